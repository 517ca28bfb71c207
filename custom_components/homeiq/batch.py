"""Turn captured events into ingest bodies, a chunk at a time, in a worker thread.

Events are serialized in small chunks soon after capture, so the in-memory buffer stays
short (many live Event objects make every garbage collection slower for all of HA); the
serialized chunks are joined into one body per batch and written to the spool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.util.ulid import ulid_now
import orjson

from .enrich import BatchContext, Columns, build_record
from .spool import Spool, SpoolItem


def _json_default(value: Any) -> Any:
    """Serialize what orjson does not know (sets, enums, State objects...) plainly."""
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


# Records built before each orjson.dumps: few live dicts at a time, little GC work.
RECORDS_PER_DUMP = 100


class BatchBuilder:
    """Accumulates serialized events until a batch is full or sealed (used under one lock)."""

    def __init__(self, spool: Spool, source: Mapping[str, str]) -> None:
        """`source` is the batch's `source` object (instance id, integration version)."""
        self.spool = spool
        self.source = source
        self.count = 0
        self._parts: list[bytes] = []

    def add(
        self, events: Columns, ctx: BatchContext, batch_size: int, seal: bool
    ) -> list[SpoolItem]:
        """Serialize `events`; spool every batch that fills up (and the rest when `seal`)."""
        items = []
        done = 0
        while done < len(events):
            # batch_size may have shrunk (options apply live): seal what is already too big
            if self.count < batch_size:
                take = min(batch_size - self.count, len(events) - done, RECORDS_PER_DUMP)
                chunk = events.rows(done, done + take)
                done += take
                body = orjson.dumps(
                    [build_record(event, ctx) for event in chunk],
                    default=_json_default,
                    option=orjson.OPT_NON_STR_KEYS,
                )
                self._parts.append(body[1:-1])  # without the list's brackets
                self.count += take
            if self.count >= batch_size:
                items.append(self.seal())
        if seal and self.count:
            items.append(self.seal())
        return items

    def seal(self) -> SpoolItem:
        """Write what has accumulated as one batch with a fresh, stable id."""
        batch_id = ulid_now()
        head = orjson.dumps({"batch_id": batch_id, "source": self.source})
        body = b"".join((head[:-1], b',"events":[', b",".join(self._parts), b"]}"))
        item = self.spool.write(batch_id, self.count, body)
        self._parts = []
        self.count = 0
        return item
