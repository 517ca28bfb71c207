"""Two event columns stored only when they say something the row does not already say.

- ``numeric_value``: a sensor's number is its state read as a number, 8 bytes each time.
  When the state text reads back (SQLite's CAST) as exactly the number sent, the row
  keeps the integer 0 instead, which takes no byte; a real number is stored otherwise
  (zero too: its sign could be lost).
- ``prev_state_seconds``: a whole number of microseconds (the precision of the times it
  is the difference of; the integration rounds it to them) is stored as that integer, 4
  bytes for up to 35 minutes and 6 beyond, instead of 8; any other value as the real
  number. (Schema 6 stored whole milliseconds; schema 8 made them microseconds: real
  durations are rarely whole milliseconds, and took 8 bytes.)

Both columns are untyped (no REAL affinity), so the storage class tells the two
encodings apart. Every read goes through ``NUMERIC_VALUE`` and ``PREV_STATE_SECONDS``
(the ``events_enriched`` view does too) and gets back the very number that was sent.
Schema version 6 rewrites the stored events to this layout (``rebuild_events``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Final

_LOGGER = logging.getLogger(__name__)

# The decoding, on an events row named ``e``.
NUMERIC_VALUE: Final = (
    "CASE typeof(e.numeric_value) WHEN 'integer' THEN CAST(e.state AS REAL)"
    " ELSE e.numeric_value END"
)
PREV_STATE_SECONDS: Final = (
    "CASE typeof(e.prev_state_seconds) WHEN 'integer' THEN e.prev_state_seconds / 1000000.0"
    " ELSE e.prev_state_seconds END"
)
_PREV_STATE_SECONDS_6: Final = PREV_STATE_SECONDS.replace("1000000.0", "1000.0")  # schema 6


def encode_numeric_value(state: str, value: str) -> str:
    """SQL storing the number ``value`` beside the state ``state`` (SQL expressions)."""
    return (
        f"CASE WHEN typeof({state}) = 'text' AND {value} != 0"
        f" AND CAST({state} AS REAL) = {value} THEN 0 ELSE CAST({value} AS REAL) END"
    )


def encode_prev_state_seconds(value: str, per_second: int = 1_000_000) -> str:
    """SQL storing a duration ``value`` (an SQL expression): a whole number of
    microseconds as that integer (``per_second``: of the unit schema 6 used, ms)."""
    whole = f"CAST(ROUND({value} * {per_second}) AS INTEGER)"
    return (
        f"CASE WHEN {whole} / {per_second}.0 = {value} THEN {whole} ELSE CAST({value} AS REAL) END"
    )


def durations_in_microseconds(conn: sqlite3.Connection) -> None:
    """Schema 6's whole milliseconds to microseconds (part of schema version 8)."""
    conn.execute(
        "UPDATE events SET prev_state_seconds = prev_state_seconds * 1000"
        " WHERE typeof(prev_state_seconds) = 'integer'"
    )
    conn.execute("DROP VIEW events_enriched")
    conn.execute(_VIEW)


_EVENTS: Final = """
CREATE TABLE events_rebuilt (
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
    numeric_value,                        -- 0: the state's number (compact_events.py)
    last_changed_ago INTEGER,             -- time_fired - last_changed (µs), 0 mostly
    prev_state_seconds,                   -- integer: whole units (compact_events.py)
    attributes_ref INTEGER,
    data TEXT,
    registry_ref INTEGER,
    cause_ref INTEGER,
    snapshot_ref INTEGER)
"""
_COPIED: Final = (
    "id, time_fired, event_type_id, entity_ref, domain_ref, origin, context_id,"
    " context_user_ref, context_parent_id, state, old_state, numeric_value, last_changed_ago,"
    " prev_state_seconds, attributes_ref, data, registry_ref, cause_ref, snapshot_ref"
)
_REWRITTEN: Final = _COPIED.replace(
    " numeric_value,", f" {encode_numeric_value('state', 'numeric_value')},"
).replace(" prev_state_seconds,", f" {encode_prev_state_seconds('prev_state_seconds', 1000)},")
_VIEW: Final = f"""
CREATE VIEW events_enriched AS
SELECT e.id, e.time_fired, t.event_type, n.entity_id,
       COALESCE(d.value, n.domain) AS domain,
       CASE typeof(e.state) WHEN 'integer' THEN s1.value ELSE e.state END AS state,
       CASE typeof(e.old_state) WHEN 'integer' THEN s2.value ELSE e.old_state END
           AS old_state,
       {NUMERIC_VALUE} AS numeric_value,
       e.time_fired - e.last_changed_ago AS last_changed,
       {PREV_STATE_SECONDS} AS prev_state_seconds,
       a.json AS attributes, e.data,
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
LEFT JOIN snapshots p ON p.id = e.snapshot_ref
"""
_CHUNK: Final = 200_000  # rows copied per statement

# Times are stored as µs since 2026-01-01 UTC: SQLite keeps an integer within ±2^47 in 6
# bytes, and µs since 1970 have been past that since 1974 (8 bytes each); from 2026 it
# covers mid-2021 to mid-2030. Other times are stored as well, in 8 bytes. ``time_fired``
# is a virtual column computed from it: every read stays as it was.
TIME_EPOCH_US: Final = 1_767_225_600_000_000
# An event's type, origin and user share one integer, ``event_kind``: (user id << 32) |
# (event type id - 1) << 1 | origin. Most events are state changes (type id 1) of local
# origin with no user: 0, which takes no byte, where three columns took a header byte
# each. The three are virtual columns computed from it.
_TYPE_MASK: Final = (1 << 31) - 1


def encode_event_kind(type_id: str, origin: str, user_ref: str) -> str:
    """SQL of ``event_kind`` from the three values (SQL expressions)."""
    return f"((COALESCE({user_ref}, 0) << 32) | (({type_id} - 1) << 1) | {origin})"


# The columns schema 9 computes from the stored ones (virtual columns) instead of storing.
COMPUTED_COLUMNS: Final = ("time_fired", "event_type_id", "origin", "context_user_ref")

_EVENTS_9: Final = f"""
CREATE TABLE events_rebuilt (
    id INTEGER PRIMARY KEY,
    time_fired INTEGER GENERATED ALWAYS AS (time_since_2026 + {TIME_EPOCH_US}) VIRTUAL,
    event_type_id INTEGER GENERATED ALWAYS AS (((event_kind >> 1) & {_TYPE_MASK}) + 1) VIRTUAL,
    entity_ref INTEGER,
    domain_ref INTEGER,
    origin INTEGER GENERATED ALWAYS AS (event_kind & 1) VIRTUAL,  -- 0 LOCAL, 1 REMOTE
    context_id BLOB NOT NULL,             -- store/codec.py
    context_user_ref INTEGER GENERATED ALWAYS AS (NULLIF(event_kind >> 32, 0)) VIRTUAL,
    context_parent_id BLOB,
    state,
    old_state,
    numeric_value,                        -- 0: the state's number (compact_events.py)
    last_changed_ago INTEGER,             -- time_fired - last_changed (µs), 0 mostly
    prev_state_seconds,                   -- integer: whole µs (compact_events.py)
    attributes_ref INTEGER,
    data TEXT,
    registry_ref INTEGER,
    cause_ref INTEGER,
    snapshot_ref INTEGER,
    time_since_2026 INTEGER NOT NULL,     -- UTC µs since TIME_EPOCH_US (compact_events.py)
    event_kind INTEGER NOT NULL)          -- type, origin and user (compact_events.py)
"""


def rebuild_events(conn: sqlite3.Connection) -> None:
    """Rewrite ``events`` in the compact layout (part of schema version 6)."""
    _rebuild(
        conn, _EVENTS, f"INSERT INTO events_rebuilt ({_COPIED}) SELECT {_REWRITTEN}",
        _VIEW.replace(PREV_STATE_SECONDS, _PREV_STATE_SECONDS_6), "the compact layout",
    )  # fmt: skip


def rebuild_with_times_since_2026(conn: sqlite3.Connection) -> None:
    """Rewrite ``events`` with its times as µs since 2026, its type, origin and user in
    one integer, and no domain where it is the entity's (store/ids.py EntityIds), which
    ``entities`` now holds as an id too (schema version 9)."""
    conn.execute("ALTER TABLE entities ADD COLUMN domain_ref INTEGER")
    conn.execute("INSERT OR IGNORE INTO strings (value) SELECT domain FROM entities")
    conn.execute("UPDATE entities SET domain_ref = (SELECT id FROM strings WHERE value = domain)")
    kept = [c.strip() for c in _COPIED.split(",") if c.strip() not in COMPUTED_COLUMNS]
    copied = ", ".join([*kept, "time_since_2026", "event_kind"])
    selected = ", ".join(
        [
            *(
                "CASE WHEN domain_ref = (SELECT domain_ref FROM entities WHERE id = entity_ref)"
                " THEN NULL ELSE domain_ref END"
                if c == "domain_ref"
                else c
                for c in kept
            ),
            f"time_fired - {TIME_EPOCH_US}",
            encode_event_kind("event_type_id", "origin", "context_user_ref"),
        ]
    )
    insert = f"INSERT INTO events_rebuilt ({copied}) SELECT {selected}"
    _rebuild(conn, _EVENTS_9, insert, _VIEW, "times since 2026")


def _rebuild(conn: sqlite3.Connection, create: str, insert: str, view: str, what: str) -> None:
    """A new ``events_rebuilt`` table (``create``) filled in chunks of ids (``insert``,
    completed with FROM events and the id range), then put in the old one's place with
    its triggers, and the view made again (``view``); ids, and so the entity index, the
    block map and every cursor, stay as they were."""
    started = time.perf_counter()
    triggers = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
            " ORDER BY rowid"
        )
    ]
    conn.execute("DROP VIEW events_enriched")
    conn.execute(create)
    top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    for low in range(0, top, _CHUNK):
        conn.execute(f"{insert} FROM events WHERE id > ? AND id <= ?", (low, low + _CHUNK))
    # Dropping a table fires no trigger: the event counter stays.
    conn.execute("DROP TABLE events")
    conn.execute("ALTER TABLE events_rebuilt RENAME TO events")
    for sql in triggers:
        conn.execute(sql)
    conn.execute(view)
    # The old table's pages go back to the file system (where auto_vacuum allows it),
    # not only to the free list: the file does not keep the size of both copies.
    conn.execute("PRAGMA incremental_vacuum").fetchall()
    if top:
        _LOGGER.info(
            "rewrote the events up to id %d with %s in %.1f s",
            top,
            what,
            time.perf_counter() - started,
        )
