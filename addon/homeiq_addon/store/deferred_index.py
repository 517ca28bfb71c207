"""Work taken out of every commit and done in bulk: the entity postings, the hourly counts.

Ingest commits each batch before it answers, so whatever a commit writes is paid per
batch. Two things used to be written there and cost more than the events themselves:
- an index on ``events (entity_ref, time_fired)``: each commit wrote to the WAL every
  index leaf its batch landed on, about one per entity, ~2 KB per 555-byte event;
- the hourly counts by (event type, entity, domain) that /stats reads: ~400 upserts
  per batch of 500.
Now ingest only appends to ``events``, and the writer indexes the new rows in bulk
(``index_new_events``): their ids go into their entities' postings (entity_postings.py;
a table of (entity, time, id) until schema 8), and their counts into ``stat_hour_key``, from
the counts the ingest kept in memory since the last index (or grouped from the rows
when it has none). It indexes after every ``INDEX_AFTER_ROWS`` events, when it is idle,
and at least every ``INDEX_AFTER_MAX_AGE_S``; each postings and counter row then takes
many events per write.

The same step puts the new events' times in the block map that serves reads by
time (time_blocks.py).

Every event up to the id in ``counters['settled']`` (the watermark) is indexed, and
only those: the watermark moves in the transaction that indexes. Readers add the
newer rows, the tail, by a rowid range scan of ``events``: ``entity_ids`` for reads by
entity, ``unindexed_counts`` for the hourly stats. A trigger keeps this true when
events are deleted: the watermark never stays above the largest id, so that a new
event (SQLite gives it max(id) + 1) always lands in the tail. A deleted event's id stays
in the postings (it costs a lookup that finds nothing or another entity's row).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
import sqlite3
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..times import US_PER_MINUTE
from . import entity_postings, time_blocks
from .ids import EVENT_DOMAIN_REF

if TYPE_CHECKING:
    from .memory_counts import Key, Position, UnindexedCounts

INDEX_AFTER_ROWS: Final = 50_000
INDEX_AFTER_IDLE_S: Final = 0.5
INDEX_AFTER_MAX_AGE_S: Final = 5.0
LOOK_EVERY_S: Final = 0.1  # how often a busy writer counts the events waiting
# Ids of an entity looked up by the first query of a read by entity, at least (or the
# read's limit), and by later ones, at most.
_FIRST_IDS: Final = 64
_MOST_IDS: Final = 8192

_WATERMARK: Final = "(SELECT value FROM counters WHERE name = 'settled')"
# Floor division, as Python's // in the ingest (SQLite's / truncates towards zero).
_HOUR: Final = (
    "CASE WHEN time_fired >= 0 THEN time_fired / 3600000000"
    " ELSE -((-time_fired - 1) / 3600000000) - 1 END"
)


def migrate_deferred_index(conn: sqlite3.Connection) -> None:
    """Replace the per-commit index with the bulk-filled table (schema version 3).

    The hourly counts of existing events were written by their commits: all indexed.
    """
    for statement in (
        "CREATE TABLE events_by_entity (entity_ref INTEGER NOT NULL,"
        " time_fired INTEGER NOT NULL, id INTEGER NOT NULL,"
        " PRIMARY KEY (entity_ref, time_fired, id)) WITHOUT ROWID",
        # In the old index's order: appends, not scattered inserts.
        "INSERT INTO events_by_entity SELECT entity_ref, time_fired, id"
        " FROM events INDEXED BY events_by_entity_time WHERE entity_ref IS NOT NULL"
        " ORDER BY entity_ref, time_fired, id",
        "DROP INDEX events_by_entity_time",
        "INSERT INTO counters VALUES ('settled', COALESCE((SELECT MAX(id) FROM events), 0))",
        "INSERT INTO counters VALUES ('settles', 0)",
        "CREATE TRIGGER events_unindexed AFTER DELETE ON events"
        " WHEN old.entity_ref IS NOT NULL BEGIN"
        " DELETE FROM events_by_entity"
        " WHERE entity_ref = old.entity_ref AND time_fired = old.time_fired AND id = old.id;"
        " END",
        "CREATE TRIGGER events_tail_deleted AFTER DELETE ON events"
        " WHEN old.id >= " + _WATERMARK + " BEGIN"
        " UPDATE counters SET value = MIN(value, COALESCE((SELECT MAX(id) FROM events), 0))"
        " WHERE name = 'settled';"
        " END",
    ):
        conn.execute(statement)


def watermark(conn: sqlite3.Connection) -> int:
    """The id up to which every event is indexed."""
    row = conn.execute(_WATERMARK[1:-1]).fetchone()
    return int(row[0])


def position(conn: sqlite3.Connection) -> Position:
    """(watermark, how many times the store indexed): names what is indexed."""
    row = conn.execute(
        f"SELECT {_WATERMARK}, (SELECT value FROM counters WHERE name = 'settles')"
    ).fetchone()
    return int(row[0]), int(row[1])


def unindexed(conn: sqlite3.Connection) -> int:
    """How many ids lie above the watermark (an upper bound of the rows to index)."""
    top = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
    return 0 if top is None else max(0, int(top) - watermark(conn))


def index_new_events(
    conn: sqlite3.Connection, known: Callable[[Position], Counter[Key] | None] | None = None
) -> Position | None:
    """Index every event above the watermark, in one transaction; the new position.

    ``known`` gives the counts by minute of the events committed since a position, if
    the store kept them (memory_counts.UnindexedCounts): then the hourly counts need no pass
    over the raw events.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        low, index_runs = position(conn)
        top = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
        moved = None
        if top is not None and top > low:
            entity_postings.index_events(conn, low, top)
            time_blocks.add_blocks(conn, low, top)
            counts = None if known is None else known((low, index_runs))
            if counts is None:
                conn.execute(
                    "INSERT INTO stat_hour_key"
                    f" SELECT {_HOUR}, event_type_id, COALESCE(entity_ref, 0),"
                    f" {EVENT_DOMAIN_REF}, COUNT(*) FROM events WHERE id > ? AND id <= ?"
                    " GROUP BY 1, 2, 3, 4 ON CONFLICT DO UPDATE SET n = n + excluded.n",
                    (low, top),
                )
            else:
                hours: Counter[Key] = Counter()
                for (minute, type_id, entity, domain), n in counts.items():
                    hours[(minute // 60, type_id, entity, domain)] += n
                conn.executemany(
                    "INSERT INTO stat_hour_key VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET n = n + excluded.n",
                    [(*k, n) for k, n in hours.items()],
                )
            conn.execute("UPDATE counters SET value = ? WHERE name = 'settled'", (top,))
            conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'settles'")
            moved = position(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return moved


def unindexed_counts(
    conn: sqlite3.Connection, first_minute: int, last_minute: int, known: UnindexedCounts
) -> list[tuple[int, int, int, int]]:
    """(event_type_id, entity_ref, domain_ref, n) of the unindexed events whose minute
    lies in [first, last]: from memory when it knows this snapshot's position, else
    grouped from the tail of raw events."""
    counts = known.since(position(conn))
    if counts is not None:
        summed: Counter[tuple[int, int, int]] = Counter()
        for (minute, type_id, entity, domain), n in counts.items():
            if first_minute <= minute <= last_minute:
                summed[(type_id, entity, domain)] += n
        return [(*k, n) for k, n in summed.items()]
    rows = conn.execute(
        f"SELECT event_type_id, COALESCE(entity_ref, 0), {EVENT_DOMAIN_REF}, COUNT(*)"
        " FROM events WHERE id > ? AND +time_fired >= ? AND +time_fired < ? GROUP BY 1, 2, 3",
        (watermark(conn), first_minute * US_PER_MINUTE, (last_minute + 1) * US_PER_MINUTE),
    )
    return [(int(t), int(e), int(d), int(n)) for t, e, d, n in rows]


def entity_ids(
    conn: sqlite3.Connection,
    ref: int,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    before: tuple[int, int] | None = None,
    newest_first: bool = False,
    limit: int = _FIRST_IDS,
) -> Iterator[tuple[str, list[Any]]]:
    """Conditions on the event row ``e`` for entity ``ref``'s events in [start, end) (and
    before the ``before`` position, (time, id) exclusive), one group of them after the
    other in time order: every event of a group lies strictly after (``newest_first``:
    before) every event of the groups before it. A read with a limit sorts each group
    on its own and stops after the group that filled it; the first group holds at least
    ``limit`` of the entity's indexed ids where the blocks' times allow a cut.

    The indexed events are looked up by their ids (entity_postings.py), grouped by the
    blocks of the time map (time_blocks.py); the newer ones, the tail, by a rowid range
    scan as the entity's own rows.
    """
    low = watermark(conn)
    if before is not None:
        end_us = before[0] + 1 if end_us is None else min(end_us, before[0] + 1)
    bounds = ["e.entity_ref = ?"]
    bound_args: list[Any] = [ref]
    for cond, value in (("e.time_fired >= ?", start_us), ("e.time_fired < ?", end_us)):
        if value is not None:
            bounds.append(cond)
            bound_args.append(value)
    if before is not None:
        bounds.append("(e.time_fired, e.id) < (?, ?)")
        bound_args += before

    def condition(ids: list[int], tail: bool) -> tuple[str, list[Any]]:
        parts = ["e.id > ?"] if tail else []
        params: list[Any] = [low] if tail else []
        if ids:
            parts.append("e.id IN (SELECT value FROM json_each(?))")
            params.append(orjson.dumps(ids).decode())
        return f"({' OR '.join(parts)}) AND " + " AND ".join(bounds), [*params, *bound_args]

    postings = entity_postings.Postings(conn, ref)
    few = postings.few()
    if few is not None:  # all at once: a few rows to sort, no blocks to walk
        yield condition(few, tail=True)
        return
    ids_in: dict[int, list[int]] = {}  # by span, as they were weighed

    def weight(span: time_blocks.Span) -> int:
        if span.low > low:
            return 0  # the tail: rows, not ids
        ids = ids_in[span.low] = postings.between(span.low, span.high)
        return len(ids)

    found = time_blocks.spans(conn, start_us, end_us, "newest" if newest_first else "oldest")
    for group in time_blocks.groups(
        found, newest_first=newest_first, weight=weight, first=limit, most=_MOST_IDS
    ):
        ids = [i for span in group if span.low <= low for i in ids_in.pop(span.low)]
        tail = any(span.low > low for span in group)
        if ids or tail:  # else no event of the entity lies in these blocks
            yield condition(ids, tail)
