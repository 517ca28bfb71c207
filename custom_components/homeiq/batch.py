"""Turn captured events into ingest bodies, a small chunk at a time.

Chunks are serialized on the event loop between yields (about half a millisecond each):
a worker thread would do the same work under the same GIL, and the hand-offs made every
state write wait for the thread's time slice. The disk writes go to the executor.
Serialized chunks are joined into one body per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from homeassistant.core import Event
from homeassistant.util.ulid import ulid_now
import orjson

from .wire import WireContext, encode

# Records built per orjson.dumps call and per slice of loop time.
RECORDS_PER_DUMP = 100


class Ready(NamedTuple):
    """A complete batch body, to be written to the spool."""

    batch_id: str
    events: int
    body: bytes


class BatchBuilder:
    """Accumulates serialized events until a batch is full or sealed (used under one lock)."""

    def __init__(self, source: Mapping[str, str]) -> None:
        """`source` is the batch's `source` object (instance id, integration version)."""
        self.source = source
        self.count = 0
        self._parts: list[bytes] = []

    def add(
        self, events: Sequence[Event[Any]], start: int, stop: int, ctx: WireContext, batch_size: int
    ) -> list[Ready]:
        """Serialize events start..stop; return every batch that filled up."""
        ready = []
        while start < stop:
            # batch_size may have shrunk (options apply live): seal what is already too big
            if self.count < batch_size:
                take = min(batch_size - self.count, stop - start)
                if self._parts:
                    self._parts.append(b",")
                self._parts.append(encode(events[start : start + take], ctx))
                self.count += take
                start += take
            if self.count >= batch_size:
                ready.append(self.seal())
        return ready

    def seal(self) -> Ready:
        """Close what has accumulated as one batch with a fresh, stable id."""
        batch_id = ulid_now()
        head = orjson.dumps({"batch_id": batch_id, "source": self.source})
        # One join, so the body is copied once (batches are megabytes).
        body = b"".join([head[:-1] + b',"events":[', *self._parts, b"]}"])
        ready = Ready(batch_id, self.count, body)
        self._parts = []
        self.count = 0
        return ready
