"""Reads of events by time without an index on time: each block of ids knows its times.

An index on ``events (time_fired)`` took 19.5 B per event, a sixth of the file. Ids are
given in arrival order and events arrive in time order almost always, so a far smaller
map serves instead: ``event_blocks`` holds, for every block of ``BLOCK_IDS`` consecutive
ids, the first and last time of its events (a block range index, as PostgreSQL's BRIN).
The events of a time range lie in the blocks whose times overlap it; a read scans those
blocks' ids (a rowid range) and keeps the rows in range. An event that arrives late
only widens its block's times: the block is then scanned by a few more reads, nothing
is ever missed.

The writer fills the map with the entity index, in bulk (deferred_index.py): blocks
hold the events up to the watermark, the newer ones (the tail) are read by their id
range with their times looked up. Deleting events leaves their blocks' times as they
were (wider than needed, never narrower); blocks below the oldest event go when the
writer indexes.

Reads that want rows in time order take the blocks in groups (``in_time_order``): every
event of a group is strictly later (newest first: earlier) than every event of the
groups before it, so each group is sorted on its own and a read with a limit stops
after the group that filled it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
import heapq
import sqlite3
from typing import Any, Final

BLOCK_SHIFT: Final = 10
BLOCK_IDS: Final = 1 << BLOCK_SHIFT  # ids per block: 10M events make 10k rows
_MAX_ID: Final = (1 << 63) - 1
_FIRST_GROUP: Final = 1  # blocks in the first group of a read in time order ...
_MAX_GROUP: Final = 64  # ... doubling up to this many


def _watermark(conn: sqlite3.Connection) -> int:
    """deferred_index.watermark (which imports this module to fill the blocks)."""
    return int(conn.execute("SELECT value FROM counters WHERE name = 'settled'").fetchone()[0])


def migrate_time_blocks(conn: sqlite3.Connection) -> None:
    """Replace the index on time by the block map (part of schema version 6)."""
    conn.execute(
        "CREATE TABLE event_blocks (block INTEGER PRIMARY KEY,"
        " first_us INTEGER NOT NULL, last_us INTEGER NOT NULL)"
    )
    # Reads in time order take the blocks by their first or last time, and stop early.
    conn.execute("CREATE INDEX event_blocks_by_first ON event_blocks (first_us)")
    conn.execute("CREATE INDEX event_blocks_by_last ON event_blocks (last_us)")
    add_blocks(conn, 0, _watermark(conn))
    conn.execute("DROP INDEX events_by_time")


def add_blocks(conn: sqlite3.Connection, low: int, top: int) -> None:
    """Put the times of the events with ids in (low, top] in their blocks' rows."""
    conn.execute(
        f"INSERT INTO event_blocks SELECT id >> {BLOCK_SHIFT}, MIN(time_fired), MAX(time_fired)"
        " FROM events WHERE id > ? AND id <= ? GROUP BY 1 ON CONFLICT (block) DO UPDATE"
        " SET first_us = MIN(first_us, excluded.first_us),"
        " last_us = MAX(last_us, excluded.last_us)",
        (low, top),
    )
    # Blocks wholly below the oldest event hold nothing any more.
    conn.execute(
        f"DELETE FROM event_blocks WHERE block < (SELECT MIN(id) FROM events) >> {BLOCK_SHIFT}"
    )


@dataclass(frozen=True, slots=True)
class Span:
    """Ids [low, high] whose events all lie in [first_us, last_us]."""

    low: int
    high: int
    first_us: int
    last_us: int


_ORDERS: Final[dict[str, tuple[str, Callable[[Span], Any]]]] = {
    "id": ("block", lambda s: s.low),
    "oldest": ("first_us, block", lambda s: (s.first_us, s.low)),
    "newest": ("last_us DESC, block DESC", lambda s: (-s.last_us, -s.low)),
}


def spans(
    conn: sqlite3.Connection, start_us: int | None, end_us: int | None, order: str = "id"
) -> Iterator[Span]:
    """The blocks (and the tail) that may hold events in [start, end), in ``order``:
    "id", "oldest" (by first time) or "newest" (by last time, descending). Read as
    they are taken: a read that stops early turns no more rows into spans."""
    low = _watermark(conn)
    start = -_MAX_ID if start_us is None else start_us
    end = _MAX_ID if end_us is None else end_us
    tail: list[Span] = []
    first, last = conn.execute(
        "SELECT MIN(time_fired), MAX(time_fired) FROM events WHERE id > ?", (low,)
    ).fetchone()
    if first is not None and last >= start and first < end:
        tail.append(Span(low + 1, _MAX_ID, first, last))
    sql_order, key = _ORDERS[order]
    cursor = conn.execute(
        "SELECT block, first_us, last_us FROM event_blocks"
        f" WHERE last_us >= ? AND first_us < ? ORDER BY {sql_order}",
        (start, end),
    )
    try:
        blocks = (
            Span(block << BLOCK_SHIFT, min(((block + 1) << BLOCK_SHIFT) - 1, low), first, last)
            for block, first, last in cursor
        )
        yield from heapq.merge(blocks, tail, key=key)
    finally:
        cursor.close()


def id_condition(group: list[Span], column: str = "e.id") -> tuple[str, list[int]]:
    """An SQL condition on ``column`` for the spans' ids (adjacent ones merged)."""
    ranges: list[list[int]] = []
    for span in sorted(group, key=lambda s: s.low):
        if ranges and span.low <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], span.high)
        else:
            ranges.append([span.low, span.high])
    if not ranges:
        return "0", []
    sql = " OR ".join(f"{column} BETWEEN ? AND ?" for _ in ranges)
    return f"({sql})", [bound for pair in ranges for bound in pair]


def in_range(
    conn: sqlite3.Connection, start_us: int | None, end_us: int | None, column: str = "e.id"
) -> tuple[str, list[int]]:
    """A condition on ``column`` true for the ids of every event in [start, end) (and a
    few more: keep the condition on the time too)."""
    return id_condition(list(spans(conn, start_us, end_us)), column)


def groups(
    found: Iterator[Span],
    *,
    newest_first: bool = False,
    weight: Callable[[Span], int] = lambda span: 1,
    first: int = _FIRST_GROUP,
    most: int = _MAX_GROUP,
) -> Iterator[list[Span]]:
    """Spans taken in time order (from ``spans``, "oldest" or "newest") in groups: every
    event of a group lies strictly after (``newest_first``: before) every event of the
    groups before it. The first group weighs at least ``first`` (by default one span
    weighs 1) where it can be cut, later ones double up to ``most``."""
    size = first
    group: list[Span] = []
    weighed = 0
    bound = 0  # the group's last time (newest first: its first time)
    for span in found:
        if group and weighed >= size:
            apart = span.last_us < bound if newest_first else span.first_us > bound
            if apart:
                yield group
                group, weighed = [], 0
                size = min(size * 2, max(most, first))
        if not group:
            bound = span.first_us if newest_first else span.last_us
        elif newest_first:
            bound = min(bound, span.first_us)
        else:
            bound = max(bound, span.last_us)
        group.append(span)
        weighed += weight(span)
    if group:
        yield group


def in_time_order(
    conn: sqlite3.Connection,
    start_us: int | None,
    end_us: int | None,
    *,
    newest_first: bool = False,
    column: str = "e.id",
) -> Iterator[tuple[str, list[Any]]]:
    """Conditions on ``column`` for successive groups of the events in [start, end), as
    ``groups`` makes them."""
    found = spans(conn, start_us, end_us, "newest" if newest_first else "oldest")
    for group in groups(found, newest_first=newest_first):
        yield id_condition(group, column)


def oldest_and_newest(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """The first and the last time of the stored events."""
    ends: list[int | None] = []
    for newest_first in (False, True):
        found = None
        for cond, params in in_time_order(conn, None, None, newest_first=newest_first):
            found = conn.execute(
                f"SELECT {'MAX' if newest_first else 'MIN'}(e.time_fired) FROM events e"
                f" WHERE {cond}",
                params,
            ).fetchone()[0]
            if found is not None:
                break
        ends.append(found)
    return ends[0], ends[1]
