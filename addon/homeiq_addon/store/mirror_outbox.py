"""The mirror's outbox: a cursor per target, committed in the same database as the events.

``mirror_targets`` holds, per configured target, the id of the last event it received
(``event_cursor``: every event up to it was written, refused or filtered out); while a
backfill runs, a second cursor (``backfill_cursor``) goes from the first event to
``backfill_until``, the newest event when it began, beside the live one. Then its
counters, its last error and success. ``mirror_refused`` keeps the
lines a target refused for their content. Rollups are rewritten in place (when a
late event changes an hour), so each written rollup is logged in
``mirror_rollup_changes``, which the targets follow by id (``rollup_cursor``) — only
while some target wants rollups: by triggers up to schema version 6, by the retention
job since (``rollup_rows.log_rollup_changes``: a day's hours share a row).

Retention asks ``retention_floor`` here, not the mirror: the store is below both.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

# lag_events is counted exactly up to this many; beyond, it is estimated from the ids.
_COUNT_LIMIT: Final = 100_000


def migrate_mirror_outbox(conn: sqlite3.Connection) -> None:
    """Schema version 5: the mirror's cursors, counters, refused points, rollup changes."""
    # Statement by statement: executescript() would commit the migration's transaction.
    for statement in (
        """CREATE TABLE mirror_targets (
            name TEXT PRIMARY KEY,
            enabled INTEGER NOT NULL,           -- as configured at the last start
            events INTEGER NOT NULL,            -- the target wants events
            rollups INTEGER NOT NULL,           -- the target wants rollups
            max_lag_us INTEGER NOT NULL,        -- further behind, it stops holding retention
            event_cursor INTEGER NOT NULL,      -- events.id received up to, live
            backfill_cursor INTEGER,            -- events.id a backfill received up to
            backfill_until INTEGER,             -- events.id the backfill runs to
            rollup_cursor INTEGER NOT NULL,     -- mirror_rollup_changes.id received up to
            rollup_scan TEXT,                   -- JSON [period, start, entity_id] of a backfill
            points_written INTEGER NOT NULL,
            points_refused INTEGER NOT NULL,
            last_error TEXT,
            last_success_us INTEGER
        ) WITHOUT ROWID""",
        """CREATE TABLE mirror_refused (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            refused_us INTEGER NOT NULL,
            line TEXT NOT NULL,
            reason TEXT NOT NULL
        )""",
        """CREATE TABLE mirror_rollup_changes (
            id INTEGER PRIMARY KEY,
            period TEXT NOT NULL,               -- hour or day
            entity_id TEXT NOT NULL,
            start INTEGER NOT NULL              -- epoch hour or epoch day
        )""",
        """CREATE TRIGGER mirror_hourly_written AFTER INSERT ON rollups_hourly
        WHEN EXISTS (SELECT 1 FROM mirror_targets WHERE rollups = 1) BEGIN
            INSERT INTO mirror_rollup_changes (period, entity_id, start)
            VALUES ('hour', NEW.entity_id, NEW.hour);
        END""",
        """CREATE TRIGGER mirror_daily_written AFTER INSERT ON rollups_daily
        WHEN EXISTS (SELECT 1 FROM mirror_targets WHERE rollups = 1) BEGIN
            INSERT INTO mirror_rollup_changes (period, entity_id, start)
            VALUES ('day', NEW.entity_id, NEW.day);
        END""",
    ):
        conn.execute(statement)


def top_event_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def oldest_unsent_us(conn: sqlite3.Connection, cursor: int) -> int | None:
    """The time_fired of the first event after ``cursor``; None when there is none."""
    row = conn.execute(
        "SELECT time_fired FROM events WHERE id > ? ORDER BY id LIMIT 1", (cursor,)
    ).fetchone()
    return None if row is None else int(row[0])


def unsent_events(conn: sqlite3.Connection, cursor: int, top: int) -> int:
    """Events after ``cursor``: counted when few, else the span of ids (events are
    numbered densely; only retention leaves gaps, below the cursors it waits for)."""
    if top - cursor > _COUNT_LIMIT:
        return top - cursor
    return int(conn.execute("SELECT COUNT(*) FROM events WHERE id > ?", (cursor,)).fetchone()[0])


def received_upto(row: dict[str, Any]) -> int:
    """The id up to which the target has every event: its backfill's, while one runs."""
    cursor: int = row["event_cursor"]
    if row["backfill_cursor"] is not None:
        cursor = min(cursor, row["backfill_cursor"])
    return cursor


def holds_upto(conn: sqlite3.Connection, row: dict[str, Any], now_us: int) -> int | None:
    """Above which id retention keeps the events for this target, None when it does not
    wait for it: disabled, sent no events, or further behind than its bound. A backfill
    whose next event is past the bound holds nothing of the history; the live cursor
    still holds."""
    if not (row["enabled"] and row["events"]):
        return None
    cursors: list[int] = sorted({received_upto(row), row["event_cursor"]})
    for cursor in cursors:
        oldest = oldest_unsent_us(conn, cursor)
        if oldest is None or now_us - oldest <= row["max_lag_us"]:
            return cursor
    return None


def target_rows(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    cursor = conn.execute("SELECT * FROM mirror_targets ORDER BY name")
    columns = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in cursor}


def retention_floor(conn: sqlite3.Connection, now_us: int) -> int | None:
    """The highest event id retention may delete (None: no target holds it back): the
    lowest cursor of the enabled targets within their lag bound."""
    held = [holds_upto(conn, row, now_us) for row in target_rows(conn).values()]
    cursors = [cursor for cursor in held if cursor is not None]
    return min(cursors) if cursors else None
