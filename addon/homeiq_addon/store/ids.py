"""Dimension rows (get-or-insert, and the id of a known entity) and the stats counters,
as the ingest writes them."""

from __future__ import annotations

from collections import Counter
import hashlib
import re
import sqlite3
from typing import Any, Final

import orjson

type Key = tuple[int, int, int, int]  # (minute, event_type_id, entity_ref, domain_ref)

REGISTRY_KEYS: Final = (
    "area_id",
    "area",
    "floor",
    "device_id",
    "device_name",
    "device_manufacturer",
    "device_model",
    "labels",
    "device_class",
    "state_class",
    "unit",
    "friendly_name",
)
CAUSE_KEYS: Final = ("cause", "cause_name", "cause_id")
SNAP_KEYS: Final = ("outdoor_temperature", "weather_condition", "sun_elevation", "people_home")
# Number-like states (sensor readings, timestamps) rarely repeat: stored as text, not interned.
NUMBERISH: Final = re.compile(r"[-+.0-9]").match
_TUPLE_COLS: Final = {
    "registry": REGISTRY_KEYS,
    "causes": CAUSE_KEYS,
    "snapshots": SNAP_KEYS,
}
_TEXT_COL: Final = {"strings": "value", "event_types": "event_type", "entities": "entity_id"}


def lookup(conn: sqlite3.Connection, table: str, value: Any) -> int:
    if table in _TEXT_COL:
        col = _TEXT_COL[table]
        hit = conn.execute(f"SELECT id FROM {table} WHERE {col} = ?", (value,)).fetchone()
        if hit is not None:
            return int(hit[0])
        if table == "entities":
            cur = conn.execute(
                "INSERT INTO entities (entity_id, domain) VALUES (?, ?)",
                (value, value.partition(".")[0]),
            )
        else:
            cur = conn.execute(f"INSERT INTO {table} ({col}) VALUES (?)", (value,))
        return int(cur.lastrowid or 0)
    cols = _TUPLE_COLS[table]
    key = orjson.dumps(value).decode()
    hit = conn.execute(f"SELECT id FROM {table} WHERE key = ?", (key,)).fetchone()
    if hit is not None:
        return int(hit[0])
    stored = [orjson.dumps(v).decode() if isinstance(v, tuple) else v for v in value]
    cur = conn.execute(
        f"INSERT INTO {table} (key, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})",
        (key, *stored),
    )
    return int(cur.lastrowid or 0)


def entity_ref(conn: sqlite3.Connection, entity_id: str) -> int | None:
    """The entity's interned id, or None if no event of it was ever stored."""
    row = conn.execute("SELECT id FROM entities WHERE entity_id = ?", (entity_id,)).fetchone()
    return None if row is None else int(row[0])


def attributes_id(conn: sqlite3.Connection, blob: bytes) -> int:
    digest = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), signed=True)
    text = blob.decode()
    # A hash collision is possible; the stored JSON decides.
    for row_id, stored in conn.execute("SELECT id, json FROM attributes WHERE hash = ?", (digest,)):
        if stored == text:
            return int(row_id)
    cur = conn.execute("INSERT INTO attributes (hash, json) VALUES (?, ?)", (digest, text))
    return int(cur.lastrowid or 0)


def flush_counts(conn: sqlite3.Connection, keys: Counter[Key]) -> None:
    """Per-minute totals, dirty hours and the row count (hourly counts: deferred_index.py)."""
    minutes: Counter[int] = Counter()
    for (minute, _, _, _), n in keys.items():
        minutes[minute] += n
    conn.executemany(
        "INSERT INTO stat_minute VALUES (?, ?)"
        " ON CONFLICT (minute) DO UPDATE SET events = events + excluded.events",
        minutes.items(),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO dirty_hours VALUES (?)", [(h,) for h in {m // 60 for m in minutes}]
    )
    conn.execute(
        "UPDATE counters SET value = value + ? WHERE name = 'events'", (sum(minutes.values()),)
    )
