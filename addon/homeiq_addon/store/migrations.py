"""Forward-only schema migrations, tracked in ``PRAGMA user_version``.

``MIGRATIONS[i]`` brings the schema from version i to i + 1; each runs in its own
transaction together with the version bump, so a crash leaves a whole version or none.
Other parts of the add-on append their migrations to the list (never reorder it).
"""

from __future__ import annotations

from collections.abc import Callable
import sqlite3

from ..errors import InvalidBackup
from .compact_events import (
    durations_in_microseconds,
    rebuild_events,
    rebuild_with_times_since_2026,
)
from .deferred_index import migrate_deferred_index
from .entity_postings import migrate_entity_postings
from .mirror_outbox import migrate_mirror_outbox
from .retention_tables import migrate_retention
from .rollup_migrations import (
    migrate_compact_rollups,
    migrate_packed_rollups,
    migrate_shorter_rollups,
)
from .time_blocks import migrate_time_blocks

type Migration = Callable[[sqlite3.Connection], None]


def m001_events(conn: sqlite3.Connection) -> None:
    """Events, the dimension tables they point into, batches, and stats counters."""
    conn.executescript(
        """
        -- Dimension tables: each distinct value is stored once and events keep its id.
        CREATE TABLE strings (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);
        CREATE TABLE event_types (id INTEGER PRIMARY KEY, event_type TEXT NOT NULL UNIQUE);
        CREATE TABLE entities (
            id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE, domain TEXT NOT NULL);
        -- Attribute sets, stored once per distinct set (like the recorder's state_attributes).
        CREATE TABLE attributes (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, json TEXT NOT NULL);
        CREATE INDEX attributes_by_hash ON attributes (hash);
        -- Registry context of an entity (changes rarely): one row per distinct combination.
        CREATE TABLE registry (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
            area_id TEXT, area TEXT, floor TEXT, device_id TEXT, device_name TEXT,
            device_manufacturer TEXT, device_model TEXT, labels TEXT, device_class TEXT,
            state_class TEXT, unit TEXT, friendly_name TEXT);
        CREATE TABLE causes (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
            cause TEXT, cause_name TEXT, cause_id TEXT);
        CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
            outdoor_temperature REAL, weather_condition TEXT, sun_elevation REAL,
            people_home INTEGER);

        -- state/old_state hold a strings.id (INTEGER) or, for number-like states that
        -- rarely repeat, the TEXT itself: the untyped column keeps whichever was stored.
        -- Context ids: 16-byte blob for a ULID, 17 bytes (0x01 + 16) for 32 hex digits,
        -- TEXT for anything else, so every id reads back exactly as it was sent.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            time_fired INTEGER NOT NULL,          -- UTC epoch microseconds
            event_type_id INTEGER NOT NULL,
            entity_ref INTEGER,
            domain_ref INTEGER,
            origin INTEGER NOT NULL,              -- 0 LOCAL, 1 REMOTE
            context_id BLOB NOT NULL,
            context_user_ref INTEGER,
            context_parent_id BLOB,
            state,
            old_state,
            numeric_value REAL,
            last_changed_ago INTEGER,             -- time_fired - last_changed (µs), 0 mostly
            prev_state_seconds REAL,
            attributes_ref INTEGER,
            data TEXT,
            registry_ref INTEGER,
            cause_ref INTEGER,
            snapshot_ref INTEGER);
        CREATE INDEX events_by_entity_time ON events (entity_ref, time_fired);
        CREATE INDEX events_by_time ON events (time_fired);

        CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY, received_us INTEGER NOT NULL,
            accepted INTEGER NOT NULL, latency_ms REAL NOT NULL,
            instance_id TEXT, integration_version TEXT) WITHOUT ROWID;
        CREATE INDEX batches_by_time ON batches (received_us);
        CREATE TABLE batch_rejects (minute INTEGER PRIMARY KEY, n INTEGER NOT NULL);
        -- Hours (epoch hour) whose raw events changed since the rollup job last ran.
        CREATE TABLE dirty_hours (hour INTEGER PRIMARY KEY);

        -- Pre-aggregated counts, so /stats never scans raw events.
        CREATE TABLE stat_minute (minute INTEGER PRIMARY KEY, events INTEGER NOT NULL);
        CREATE TABLE stat_minute_key (
            minute INTEGER NOT NULL, event_type_id INTEGER NOT NULL,
            entity_ref INTEGER NOT NULL, domain_ref INTEGER NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (minute, event_type_id, entity_ref, domain_ref)) WITHOUT ROWID;
        CREATE TABLE stat_hour_key (
            hour INTEGER NOT NULL, event_type_id INTEGER NOT NULL,
            entity_ref INTEGER NOT NULL, domain_ref INTEGER NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (hour, event_type_id, entity_ref, domain_ref)) WITHOUT ROWID;

        -- COUNT(*) over millions of rows is slow; this stays exact whoever deletes.
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('events', 0);
        CREATE TRIGGER events_deleted AFTER DELETE ON events BEGIN
            UPDATE counters SET value = value - 1 WHERE name = 'events';
        END;

        -- Every stored event with its dimensions resolved, for ad-hoc SQL.
        CREATE VIEW events_enriched AS
        SELECT e.id, e.time_fired, t.event_type, n.entity_id,
               d.value AS domain,
               CASE typeof(e.state) WHEN 'integer' THEN s1.value ELSE e.state END AS state,
               CASE typeof(e.old_state) WHEN 'integer' THEN s2.value ELSE e.old_state END
                   AS old_state,
               e.numeric_value, e.time_fired - e.last_changed_ago AS last_changed,
               e.prev_state_seconds, a.json AS attributes, e.data,
               r.area_id, r.area, r.floor, r.device_id, r.device_name,
               r.device_manufacturer, r.device_model, r.labels, r.device_class,
               r.state_class, r.unit, r.friendly_name,
               c.cause, c.cause_name, c.cause_id,
               p.outdoor_temperature, p.weather_condition, p.sun_elevation, p.people_home
        FROM events e
        JOIN event_types t ON t.id = e.event_type_id
        LEFT JOIN entities n ON n.id = e.entity_ref
        LEFT JOIN strings d ON d.id = e.domain_ref
        LEFT JOIN strings s1 ON s1.id = e.state
        LEFT JOIN strings s2 ON s2.id = e.old_state
        LEFT JOIN attributes a ON a.id = e.attributes_ref
        LEFT JOIN registry r ON r.id = e.registry_ref
        LEFT JOIN causes c ON c.id = e.cause_ref
        LEFT JOIN snapshots p ON p.id = e.snapshot_ref;
        """
    )


def m004_drop_stat_minute_key(conn: sqlite3.Connection) -> None:
    """stat_minute_key (counts by minute and key) was never written nor read: the stats
    of the last hour count in memory (memory_counts.py), longer periods by hour."""
    conn.execute("DROP TABLE stat_minute_key")


def m006_compact_events(conn: sqlite3.Connection) -> None:
    """Fewer bytes per event: the index on time gives way to a map of id blocks, and
    numbers the row already holds are not stored twice."""
    migrate_time_blocks(conn)
    rebuild_events(conn)


def m008_times_beside_the_event(conn: sqlite3.Connection) -> None:
    """Durations in whole microseconds, and an event's own context id stored beside its
    time (store/codec.py ``ulid_near``: only new rows; older rows keep 16 bytes, which
    read as before). An older add-on would misread both: the version keeps it away."""
    durations_in_microseconds(conn)


MIGRATIONS: list[Migration] = [
    m001_events,
    migrate_retention,
    migrate_deferred_index,
    m004_drop_stat_minute_key,
    migrate_mirror_outbox,
    m006_compact_events,
    migrate_packed_rollups,
    m008_times_beside_the_event,
    rebuild_with_times_since_2026,
    migrate_entity_postings,
    migrate_compact_rollups,
    migrate_shorter_rollups,
]


class SchemaTooNew(InvalidBackup):
    """The database was written by a newer add-on; refusing to touch it.

    A backup to restore: 422 invalid_backup. The live database at start: the service
    does not start (exit code 2, __main__)."""


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply the missing migrations up to version ``upto`` (default: this add-on's);
    return the schema version now in place."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    upto = len(MIGRATIONS) if upto is None else upto
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"database schema version {version} is newer than this add-on's "
            f"({len(MIGRATIONS)}); restore a backup or upgrade the add-on"
        )
    for number in range(version, upto):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number](conn)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return max(version, upto)
