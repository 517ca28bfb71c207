"""The few reads of the store's raw ``events`` table that retention needs.

Kept in one place so the rest of the package does not depend on how the store interns
entity ids, event types and states.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import orjson

from ..store import entity_postings, time_blocks
from ..store.compact_events import NUMERIC_VALUE
from ..store.deferred_index import entity_ids
from ..store.ids import entity_ref
from ..times import US_PER_HOUR

# Only state events describe an entity's state; other events with an entity id
# (service calls, for instance) do not count towards time in state.
_STATE_TYPES: Final = (
    "SELECT id FROM event_types WHERE event_type IN ('state_changed', 'state_reported')"
)
_STATE_TEXT: Final = "CASE typeof(e.state) WHEN 'integer' THEN s.value ELSE e.state END"


def hour_events(
    conn: sqlite3.Connection, start_us: int, end_us: int
) -> list[tuple[str, int, int, str | None, float | None]]:
    """State events in [start, end) as (entity_id, entity_ref, time_us, state,
    numeric_value), ordered by entity then time."""
    ids, params = time_blocks.in_range(conn, start_us, end_us)
    return conn.execute(
        f"SELECT n.entity_id, n.id, e.time_fired, {_STATE_TEXT}, {NUMERIC_VALUE}"
        " FROM events e JOIN entities n ON n.id = e.entity_ref"
        " LEFT JOIN strings s ON s.id = e.state"
        f" WHERE {ids} AND e.time_fired >= ? AND e.time_fired < ?"
        f" AND e.event_type_id IN ({_STATE_TYPES})"
        " ORDER BY n.entity_id, e.time_fired, e.id",
        (*params, start_us, end_us),
    ).fetchall()


def events_by_hour(conn: sqlite3.Connection, start_us: int, end_us: int) -> dict[int, int]:
    """How many events (of any type) each epoch hour in [start, end) holds (hours
    without events left out). Through the blocks of ids (there is no index on time)."""
    ids, params = time_blocks.in_range(conn, start_us, end_us)
    return dict(
        conn.execute(
            f"SELECT e.time_fired / {US_PER_HOUR}, COUNT(*) FROM events e WHERE {ids}"
            " AND e.time_fired >= ? AND e.time_fired < ? GROUP BY 1",
            (*params, start_us, end_us),
        ).fetchall()
    )


def previous_state(
    conn: sqlite3.Connection, entity_id: str, before_us: int
) -> tuple[bool, str | None]:
    """(found, state) of the entity's last raw state event before a time."""
    ref = entity_ref(conn, entity_id)
    if ref is None:
        return False, None
    for ids, params in entity_ids(conn, ref, end_us=before_us, newest_first=True, limit=1):
        row = conn.execute(
            f"SELECT {_STATE_TEXT} FROM events e LEFT JOIN strings s ON s.id = e.state"
            f" WHERE {ids} AND e.event_type_id IN ({_STATE_TYPES})"
            " ORDER BY e.time_fired DESC, e.id DESC LIMIT 1",
            params,
        ).fetchone()
        if row is not None:
            return True, row[0]
    return False, None


def purge_candidates(
    conn: sqlite3.Connection, after: tuple[int, int], before_us: int, limit: int
) -> list[tuple[int, int, str | None, str | None, str]]:
    """The next events older than ``before_us`` after a (time, id) position, oldest first,
    as (id, time_us, entity_id, domain, event_type)."""
    # The blocks of ids in time order (store/time_blocks.py), until one has rows.
    for ids, params in time_blocks.in_time_order(conn, after[0], before_us):
        found = conn.execute(
            "SELECT e.id, e.time_fired, n.entity_id, COALESCE(n.domain, d.value), t.event_type"
            " FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " LEFT JOIN entities n ON n.id = e.entity_ref"
            " LEFT JOIN strings d ON d.id = e.domain_ref"
            f" WHERE {ids} AND e.time_fired < ? AND (e.time_fired, e.id) > (?, ?)"
            " ORDER BY e.time_fired, e.id LIMIT ?",
            (*params, before_us, *after, limit),
        ).fetchall()
        if found:
            return found
    return []


def delete_events(conn: sqlite3.Connection, ids: list[int]) -> int:
    # One JSON parameter instead of thousands of placeholders.
    return conn.execute(
        "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))",
        (orjson.dumps(ids).decode(),),
    ).rowcount


def forget_purged(
    conn: sqlite3.Connection, after: int = -1, budget_s: float | None = None
) -> int | None:
    """After a purge: the store's postings forget the ids of the events purged, for the
    entities after ``after`` until ``budget_s`` is spent; the last entity done, or None
    when all are (entity_postings.forget_older)."""
    return entity_postings.forget_older(conn, after, budget_s)


def raw_tier(conn: sqlite3.Connection) -> tuple[int, int | None, int | None]:
    """(rows, oldest_us, newest_us) of the raw events, without scanning them."""
    rows = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()
    oldest, newest = time_blocks.oldest_and_newest(conn)
    return (0 if rows is None else int(rows[0])), oldest, newest


def oldest_raw(conn: sqlite3.Connection, entity_id: str) -> int | None:
    """Time of the entity's oldest raw event still stored."""
    ref = entity_ref(conn, entity_id)
    if ref is None:
        return None
    for ids, params in entity_ids(conn, ref, limit=1):
        found: int | None = conn.execute(
            f"SELECT MIN(e.time_fired) FROM events e WHERE {ids}", params
        ).fetchone()[0]
        if found is not None:
            return found
    return None
