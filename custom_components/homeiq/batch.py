"""Turn captured events into ingest bodies, a small chunk at a time, off the event loop.

The chunks are serialized in the pipeline's own encoder thread (one job per flush): the
event loop only hands the taken events over and takes the bodies back, so Home Assistant's
loop no longer pays for the JSON. Registry facts are read on the loop (the registries are
its own); the thread gets them as plain, immutable data (enrich.EntityInfo). Serialized
chunks are joined into one body per batch; the disk writes go to the executor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from homeassistant.util.ulid import ulid_now
import orjson

from .capture import Captured
from .wire import EntityTable, WireContext, encode, encode_columns

# Records built per orjson.dumps call (a block of columns holds as many events).
RECORDS_PER_DUMP = 100

# start, stop: events[start:stop] go into one batch; with the table of that batch's
# entities when the add-on reads them (wire.py); whether they are sent as a block of
# columns (contract EventColumns, which needs the table) rather than as events.
type Chunk = tuple[int, int, EntityTable | None, bool]


class Ready(NamedTuple):
    """A complete batch, to be written to the spool: its body is `b"".join(parts)`, joined
    by the disk write, off the loop (batches are megabytes)."""

    batch_id: str
    events: int
    parts: list[bytes]


class Encoded(NamedTuple):
    """What an encoding job gives back: the chunks it serialized, in order, and the
    entities it met without registry facts (it stopped at the first chunk needing one)."""

    parts: list[bytes]
    unknown: set[str]


def encode_chunks(events: Sequence[Captured], chunks: list[Chunk], ctx: WireContext) -> Encoded:
    """Serialize the chunks (in the encoder thread; reads only `events` and `ctx`).

    A chunk with an entity that has no registry facts yet is not begun: serializing
    moves the per-entity caches along (an event without attributes takes the entity's
    last ones), so a chunk stopped half way and done again after the loop's lookup
    would give its first events attributes of later ones.
    """
    parts: list[bytes] = []
    for start, stop, table, columns in chunks:
        chunk = events[start:stop]
        if _without_facts(chunk, ctx.infos):
            # One trip back to the loop for all of them (after a registry change, all are).
            return Encoded(parts, _without_facts(events[start : chunks[-1][1]], ctx.infos))
        if columns and table is not None:
            parts.append(encode_columns(chunk, ctx, table))
        else:
            parts.append(encode(chunk, ctx, table))
    return Encoded(parts, set())


def _without_facts(events: Sequence[Captured], infos: Mapping[str, object]) -> set[str]:
    """The entities of these events that have no registry facts in `infos`."""
    return {
        entity_id
        for captured in events
        if (entity_id := captured[1]) is not None and entity_id not in infos
    }


class BatchBuilder:
    """Accumulates serialized events until a batch is full or sealed (used under one lock)."""

    def __init__(self, source: Mapping[str, str]) -> None:
        """`source` is the batch's `source` object (instance id, integration version)."""
        self.source = source
        self.count = 0
        self._parts: list[bytes] = []
        self._table: EntityTable | None = None  # the open batch's entities, if any
        self._columns = False  # whether the open batch's events are blocks of columns

    def plan(
        self, start: int, stop: int, batch_size: int, tables: bool, columns: bool = False
    ) -> list[Chunk]:
        """Cut events start..stop into chunks that each fall within one batch; with
        `tables`, each batch's events refer to its entities (wire.EntityTable); with
        `columns` too, each new batch sends them as blocks of columns. A batch keeps the
        form it was opened with (a batch is one form or the other)."""
        chunks: list[Chunk] = []
        count = self.count
        table = self._table
        as_columns = self._columns if count else tables and columns
        while start < stop:
            if count >= batch_size:  # batch_size may have shrunk (options apply live)
                count, table, as_columns = 0, None, tables and columns
            if (tables or as_columns) and table is None:
                table = EntityTable()
            take = min(batch_size - count, stop - start, RECORDS_PER_DUMP)
            chunks.append(
                (start, start + take, table if tables or as_columns else None, as_columns)
            )
            start += take
            count += take
        return chunks

    def add(self, chunks: list[Chunk], parts: list[bytes], batch_size: int) -> list[Ready]:
        """Add serialized chunks planned with the same `batch_size`; return every batch
        that filled up."""
        ready = []
        for (start, stop, table, columns), part in zip(chunks, parts, strict=False):
            if self.count >= batch_size:
                ready.append(self.seal())
            if self._parts:
                self._parts.append(b",")
            self._parts.append(part)
            if table is not None:
                self._table = table
            self._columns = columns
            self.count += stop - start
            if self.count >= batch_size:
                ready.append(self.seal())
        return ready

    def seal(self) -> Ready:
        """Close what has accumulated as one batch with a fresh, stable id."""
        batch_id = ulid_now()
        head = orjson.dumps({"batch_id": batch_id, "source": self.source})
        self._parts.insert(0, head[:-1] + (b',"columns":[' if self._columns else b',"events":['))
        if self._table is not None and self._table.facts:
            self._parts.append(b'],"entities":[')
            self._parts.append(b",".join(self._table.facts))
        self._parts.append(b"]}")
        ready = Ready(batch_id, self.count, self._parts)
        self._parts = []
        self._table = None
        self._columns = False
        self.count = 0
        return ready
