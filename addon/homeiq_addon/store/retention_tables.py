"""Retention's schema migration, appended to the store's migration list.

Schema version 2 keyed rollups by the entity id text, a row per entity and hour; version
7 packs them a day per row, keyed by the entity's interned id (store/rollup_rows.py).
"""

from __future__ import annotations

import sqlite3

_ROLLUP_COLUMNS = """
    count INTEGER NOT NULL,          -- events with a numeric value
    min REAL, max REAL, sum REAL,
    events INTEGER NOT NULL,         -- all state events seen (guards rebuilds after a purge)
    transitions INTEGER NOT NULL,
    time_in_state TEXT NOT NULL,     -- JSON {state: seconds}
    last_state TEXT                  -- state at the end of the period, carried forward
"""


def migrate_retention(conn: sqlite3.Connection) -> None:
    """Create policies, rollup tables and the job bookkeeping."""
    # Statement by statement: executescript() would commit the store's migration
    # transaction half-way.
    script = f"""
        CREATE TABLE IF NOT EXISTS retention_policies (
            name TEXT PRIMARY KEY,
            body TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS retention_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS rollups_hourly (
            entity_id TEXT NOT NULL,
            hour INTEGER NOT NULL,
            {_ROLLUP_COLUMNS},
            PRIMARY KEY (entity_id, hour)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS rollups_hourly_hour ON rollups_hourly(hour);
        CREATE TABLE IF NOT EXISTS rollups_daily (
            entity_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            {_ROLLUP_COLUMNS},
            PRIMARY KEY (entity_id, day)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS rollups_daily_day ON rollups_daily(day);
        CREATE TABLE IF NOT EXISTS rollup_dirty_days (day INTEGER PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS retention_runs (
            id INTEGER PRIMARY KEY,
            started_at INTEGER NOT NULL,
            finished_at INTEGER,
            dry_run INTEGER NOT NULL,
            status TEXT NOT NULL,
            report TEXT
        );
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
