"""Which events each entity has: its ids in short lists, 2 bytes an event.

``events_by_entity`` held (entity, time, id) of every event: 22 B per event, a quarter
of the file. Reads by entity need only the ids: the time of an event is in its row, and
the order in time comes from the block map (time_blocks.py). So each entity has
postings, rows of up to ``POSTING_IDS`` of its ids, ascending, that all lie in one
segment of ``SEGMENT_IDS`` consecutive ids; each id is stored as its offset in the
segment, 2 bytes. The row is keyed by its first id: an entity's rows in id order.

A bit map of the blocks of ids that hold an entity's events would take far less, but a
chatty entity is in every block: reading its day would scan every event of the day,
about five times slower than looking its events up by id (measured at 200,000 events,
for an entity with one event in 130). The postings keep that lookup.

The writer appends the ids of new events when it indexes (deferred_index.py); an
append rewrites at most one row of ``POSTING_IDS`` ids per entity. Nothing is deleted
with an event: its id stays in the postings and a read finds no row for it, or a row
of another entity once SQLite hands the id out again, so every read keeps the
condition on the entity. After retention purged the oldest events, their ids go
(``forget_older``); ids of events deleted in between stay until then.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import groupby, islice
import operator
import sqlite3
import sys
import time
from typing import Final

SEGMENT_SHIFT: Final = 16
SEGMENT_IDS: Final = 1 << SEGMENT_SHIFT  # offsets in a segment fit 2 bytes
POSTING_IDS: Final = 256  # ids per row: an append rewrites at most 512 bytes
FEW_IDS: Final = 256  # an entity with no more ids is read in one query


def migrate_entity_postings(conn: sqlite3.Connection) -> None:
    """Replace ``events_by_entity`` by the postings (schema version 10)."""
    conn.execute(
        "CREATE TABLE entity_postings (entity_ref INTEGER NOT NULL,"
        " first_id INTEGER NOT NULL, offsets BLOB NOT NULL,"
        " PRIMARY KEY (entity_ref, first_id)) WITHOUT ROWID"
    )
    # The old index holds exactly the indexed events, entity by entity (by time there).
    rows = conn.execute("SELECT entity_ref, id FROM events_by_entity ORDER BY entity_ref")
    for ref, entity_rows in groupby(rows, key=operator.itemgetter(0)):
        add_postings(conn, {ref: sorted(event_id for _, event_id in entity_rows)})
    conn.execute("DROP TRIGGER events_unindexed")
    conn.execute("DROP TABLE events_by_entity")


def _pack(ids: list[int]) -> bytes:
    offsets = array("H", [i & (SEGMENT_IDS - 1) for i in ids])
    if sys.byteorder == "big":
        offsets.byteswap()  # stored little-endian, whatever the machine
    return offsets.tobytes()


def _unpack(first_id: int, packed: bytes) -> list[int]:
    offsets = array("H")
    offsets.frombytes(packed)
    if sys.byteorder == "big":
        offsets.byteswap()
    base = first_id & ~(SEGMENT_IDS - 1)
    return [base + o for o in offsets]


def _append(conn: sqlite3.Connection, ref: int, first_id: int, packed: bytes) -> None:
    """Add offsets to the entity's row that starts at ``first_id``, made if missing."""
    row = conn.execute(
        "SELECT offsets FROM entity_postings WHERE entity_ref = ? AND first_id = ?",
        (ref, first_id),
    ).fetchone()
    if row is None:
        conn.execute("INSERT INTO entity_postings VALUES (?, ?, ?)", (ref, first_id, packed))
    else:  # joined here: SQL's || would make text of the bytes
        conn.execute(
            "UPDATE entity_postings SET offsets = ? WHERE entity_ref = ? AND first_id = ?",
            (row[0] + packed, ref, first_id),
        )


def _ascending(rows: Iterable[tuple[int, bytes]]) -> list[int]:
    """The ids of rows taken in key order, ascending and once each: they are unless
    SQLite handed the ids of deleted events to the entity again."""
    ids = [i for first_id, packed in rows for i in _unpack(first_id, packed)]
    if all(map(operator.lt, ids, islice(ids, 1, None))):
        return ids
    return sorted(set(ids))


def _add_rows(conn: sqlite3.Connection, ref: int, ids: list[int], start: int = 0) -> None:
    """Store ``ids[start:]`` (ascending) in new rows of the entity."""
    while start < len(ids):
        segment_end = ((ids[start] >> SEGMENT_SHIFT) + 1) << SEGMENT_SHIFT
        stop = min(bisect_left(ids, segment_end, start), start + POSTING_IDS)
        _append(conn, ref, ids[start], _pack(ids[start:stop]))
        start = stop


def add_postings(conn: sqlite3.Connection, new: dict[int, list[int]]) -> None:
    """Append each entity's new ids (ascending) to its postings.

    The ids are above every id stored unless SQLite handed out again the ids of deleted
    events: then a row may start at an id already used as a first id, or hold an id
    twice. Readers sort and deduplicate each segment's ids."""
    for ref, ids in new.items():
        start = 0
        last = conn.execute(
            "SELECT first_id, length(offsets) FROM entity_postings WHERE entity_ref = ?"
            " ORDER BY first_id DESC LIMIT 1",
            (ref,),
        ).fetchone()
        # The rest of the last row, if the first ids fall in its segment.
        if last is not None and ids[0] >> SEGMENT_SHIFT == last[0] >> SEGMENT_SHIFT:
            first_id, size = last
            segment_end = ((first_id >> SEGMENT_SHIFT) + 1) << SEGMENT_SHIFT
            start = min(bisect_left(ids, segment_end), max(0, POSTING_IDS - size // 2))
            if start:
                _append(conn, ref, first_id, _pack(ids[:start]))
        _add_rows(conn, ref, ids, start)


def index_events(conn: sqlite3.Connection, low: int, top: int) -> None:
    """Add the events with ids in (low, top] to their entities' postings."""
    # One row per entity: a tuple per event would cost more than the rest of the work.
    rows = conn.execute(
        "SELECT entity_ref, group_concat(id) FROM events"
        " WHERE id > ? AND id <= ? AND entity_ref IS NOT NULL GROUP BY entity_ref",
        (low, top),
    )
    # An entity at a time: the ids of every entity at once (up to 50,000 events' worth)
    # took 2 MB while ingest was busiest. The query reads only events; the postings
    # written while it runs are another table.
    for ref, ids in rows:
        add_postings(conn, {ref: sorted(map(int, ids.split(",")))})


def forget_older(
    conn: sqlite3.Connection, after: int = -1, budget_s: float | None = None
) -> int | None:
    """Drop the ids below the oldest event (all when none is left): after retention
    purged the oldest events. An entity's rows are in id order, so this reads only
    the rows it changes, and one row per entity.

    Entity by entity (``entities.id`` order) from the one after ``after``, until
    ``budget_s`` is spent: returns the last entity done, for the next call to go on
    after it, or None when every entity is done. A call that did them all at once held
    the writer (and every batch waiting for it) a third of a second at a million events.
    """
    oldest = conn.execute("SELECT MIN(id) FROM events").fetchone()[0]
    if oldest is None:
        conn.execute("DELETE FROM entity_postings")
        return None
    started = time.perf_counter()
    refs = conn.execute("SELECT id FROM entities WHERE id > ? ORDER BY id", (after,))
    for (ref,) in refs.fetchall():
        rows = conn.execute(
            "SELECT first_id, offsets FROM entity_postings WHERE entity_ref = ? AND first_id < ?",
            (ref, oldest),
        ).fetchall()
        if rows:
            kept = sorted({i for first_id, packed in rows for i in _unpack(first_id, packed)})
            conn.execute(
                "DELETE FROM entity_postings WHERE entity_ref = ? AND first_id < ?", (ref, oldest)
            )
            _add_rows(conn, ref, kept, bisect_left(kept, oldest))
        if budget_s is not None and time.perf_counter() - started >= budget_s:
            return int(ref)
    return None


class Postings:
    """One entity's ids, read a segment at a time as they are asked for."""

    def __init__(self, conn: sqlite3.Connection, ref: int) -> None:
        self._conn = conn
        self._ref = ref
        self._segments: dict[int, list[int]] = {}

    def _segment(self, segment: int) -> list[int]:
        ids = self._segments.get(segment)
        if ids is None:
            low = segment << SEGMENT_SHIFT
            ids = self._segments[segment] = _ascending(
                self._conn.execute(
                    "SELECT first_id, offsets FROM entity_postings"
                    " WHERE entity_ref = ? AND first_id BETWEEN ? AND ? ORDER BY first_id",
                    (self._ref, low, low + SEGMENT_IDS - 1),
                )
            )
        return ids

    def few(self) -> list[int] | None:
        """All the entity's ids, ascending, when it has few (a read takes them all at
        once); None when it has more."""
        rows: list[tuple[int, bytes]] = []
        count = 0
        cursor = self._conn.execute(
            "SELECT first_id, offsets FROM entity_postings WHERE entity_ref = ? ORDER BY first_id",
            (self._ref,),
        )
        for row in cursor:
            count += len(row[1]) // 2
            if count > FEW_IDS:
                cursor.close()
                return None
            rows.append(row)
        return _ascending(rows)

    def between(self, low: int, high: int) -> list[int]:
        """The entity's ids in [low, high], ascending."""
        found: list[int] = []
        for segment in range(low >> SEGMENT_SHIFT, (high >> SEGMENT_SHIFT) + 1):
            ids = self._segment(segment)
            found += ids[bisect_left(ids, low) : bisect_right(ids, high)]
        return found
