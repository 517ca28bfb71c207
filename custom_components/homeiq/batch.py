"""Turn captured events into ingest bodies, a small chunk at a time.

Chunks are serialized on the event loop between yields (about half a millisecond each):
a worker thread would do the same work under the same GIL, and the hand-offs made every
state write wait for the thread's time slice. The disk writes go to the executor.
Serialized chunks are joined into one body per batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from homeassistant.util.ulid import ulid_now
import orjson

from .enrich import BatchContext, Columns, make_record

# Records built per orjson.dumps call and per slice of loop time.
RECORDS_PER_DUMP = 100


class Ready(NamedTuple):
    """A complete batch body, to be written to the spool."""

    batch_id: str
    events: int
    body: bytes


def _json_default(value: Any) -> Any:
    """Serialize what orjson does not know (sets, enums, State objects...) plainly."""
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


class BatchBuilder:
    """Accumulates serialized events until a batch is full or sealed (used under one lock)."""

    def __init__(self, source: Mapping[str, str]) -> None:
        """`source` is the batch's `source` object (instance id, integration version)."""
        self.source = source
        self.count = 0
        self._parts: list[bytes] = []

    def add(
        self, events: Columns, start: int, stop: int, ctx: BatchContext, batch_size: int
    ) -> list[Ready]:
        """Serialize events start..stop; return every batch that filled up."""
        ready = []
        while start < stop:
            # batch_size may have shrunk (options apply live): seal what is already too big
            if self.count < batch_size:
                take = min(batch_size - self.count, stop - start)
                body = orjson.dumps(
                    [make_record(events, i, ctx) for i in range(start, start + take)],
                    default=_json_default,
                    option=orjson.OPT_NON_STR_KEYS,
                )
                self._parts.append(body[1:-1])  # without the list's brackets
                self.count += take
                start += take
            if self.count >= batch_size:
                ready.append(self.seal())
        return ready

    def seal(self) -> Ready:
        """Close what has accumulated as one batch with a fresh, stable id."""
        batch_id = ulid_now()
        head = orjson.dumps({"batch_id": batch_id, "source": self.source})
        body = b"".join((head[:-1], b',"events":[', b",".join(self._parts), b"]}"))
        ready = Ready(batch_id, self.count, body)
        self._parts = []
        self.count = 0
        return ready
