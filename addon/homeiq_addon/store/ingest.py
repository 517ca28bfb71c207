"""Writing a validated batch: events, batch id, dirty hours and counters in one transaction.

``Ingestor.write_batch`` runs on the writer thread (through ``Store.write``, or directly
on a connection for bulk loads). It keeps in-memory caches of dimension ids so that the
common event costs dictionary lookups, not SELECTs; the store clears them whenever a
transaction rolls back, because the ids they hold may then not exist.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import hashlib
import re
import sqlite3
import time
from typing import Any, Final

import orjson

from ..schema import parse_time_us
from .codec import encode_context

_US_PER_MIN: Final = 60_000_000
_US_PER_HOUR: Final = 3_600_000_000
# Caches are dropped wholesale past this size: cheap, and keeps the RSS bounded when
# attribute sets or states never repeat.
_CACHE_LIMIT: Final = 200_000
_REGISTRY_KEYS: Final = (
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
# Number-like states (sensor readings, timestamps) rarely repeat: stored as text, not interned.
_NUMBERISH: Final = re.compile(r"[-+.0-9]")
_INSERT: Final = (
    "INSERT INTO events (time_fired, event_type_id, entity_ref, domain_ref, origin,"
    " context_id, context_user_ref, context_parent_id, state, old_state, numeric_value,"
    " last_changed_ago, prev_state_seconds, attributes_ref, data, registry_ref, cause_ref,"
    " snapshot_ref) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass(slots=True)
class Ack:
    """What the add-on answers for a batch."""

    batch_id: str
    accepted: int
    duplicate: bool

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "accepted": self.accepted, "duplicate": self.duplicate}


class Ingestor:
    """Turns validated events into rows; one instance per store, used on the writer thread."""

    def __init__(self) -> None:
        self._strings: dict[str, int] = {}
        self._types: dict[str, int] = {}
        self._entities: dict[str, int] = {}
        self._attrs: dict[bytes, int] = {}
        self._tuples: dict[tuple[str, bytes], int] = {}

    def clear_caches(self) -> None:
        self._strings.clear()
        self._types.clear()
        self._entities.clear()
        self._attrs.clear()
        self._tuples.clear()

    # --- interning (writer thread only) ---------------------------------------------

    def _string(self, conn: sqlite3.Connection, value: str) -> int:
        found = self._strings.get(value)
        if found is None:
            found = _get_or_insert(conn, "strings", "value", value)
            if len(self._strings) > _CACHE_LIMIT:
                self._strings.clear()
            self._strings[value] = found
        return found

    def _type(self, conn: sqlite3.Connection, value: str) -> int:
        found = self._types.get(value)
        if found is None:
            found = _get_or_insert(conn, "event_types", "event_type", value)
            self._types[value] = found
        return found

    def _entity(self, conn: sqlite3.Connection, entity_id: str) -> int:
        found = self._entities.get(entity_id)
        if found is None:
            row = conn.execute("SELECT id FROM entities WHERE entity_id = ?", (entity_id,))
            hit = row.fetchone()
            if hit is None:
                cur = conn.execute(
                    "INSERT INTO entities (entity_id, domain) VALUES (?, ?)",
                    (entity_id, entity_id.partition(".")[0]),
                )
                found = int(cur.lastrowid or 0)
            else:
                found = int(hit[0])
            if len(self._entities) > _CACHE_LIMIT:
                self._entities.clear()
            self._entities[entity_id] = found
        return found

    def _attributes(self, conn: sqlite3.Connection, attrs: dict[str, Any]) -> int:
        blob = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
        found = self._attrs.get(blob)
        if found is None:
            digest = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), signed=True)
            text = blob.decode()
            found = None
            # A hash collision is possible; the stored JSON decides.
            for row_id, stored in conn.execute(
                "SELECT id, json FROM attributes WHERE hash = ?", (digest,)
            ):
                if stored == text:
                    found = int(row_id)
                    break
            if found is None:
                cur = conn.execute(
                    "INSERT INTO attributes (hash, json) VALUES (?, ?)", (digest, text)
                )
                found = int(cur.lastrowid or 0)
            if len(self._attrs) > _CACHE_LIMIT:
                self._attrs.clear()
            self._attrs[blob] = found
        return found

    def _tuple(
        self, conn: sqlite3.Connection, table: str, cols: tuple[str, ...], values: tuple[Any, ...]
    ) -> int:
        key = orjson.dumps(values)
        found = self._tuples.get((table, key))
        if found is None:
            text = key.decode()
            hit = conn.execute(f"SELECT id FROM {table} WHERE key = ?", (text,)).fetchone()
            if hit is None:
                stored = tuple(
                    orjson.dumps(v).decode() if isinstance(v, list) else v for v in values
                )
                cur = conn.execute(
                    f"INSERT INTO {table} (key, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})",
                    (text, *stored),
                )
                found = int(cur.lastrowid or 0)
            else:
                found = int(hit[0])
            if len(self._tuples) > _CACHE_LIMIT:
                self._tuples.clear()
            self._tuples[(table, key)] = found
        return found

    def _state(self, conn: sqlite3.Connection, state: str | None) -> int | str | None:
        if state is None:
            return None
        if state and _NUMBERISH.match(state):
            return state
        return self._string(conn, state)

    # --- the batch -------------------------------------------------------------------

    def write_batch(
        self,
        conn: sqlite3.Connection,
        batch: dict[str, Any],
        started: float | None = None,
    ) -> Ack:
        """Insert a validated batch unless its id was seen; call inside a transaction."""
        batch_id: str = batch["batch_id"]
        seen = conn.execute(
            "SELECT accepted FROM batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        if seen is not None:
            return Ack(batch_id, int(seen[0]), True)
        events: list[dict[str, Any]] = batch["events"]
        rows = []
        minutes: Counter[int] = Counter()
        keys: Counter[tuple[int, int, int, int]] = Counter()
        for ev in events:
            t = parse_time_us(ev["time_fired"])
            assert t is not None  # validated before
            rows.append(self._row(conn, ev, t))
            row = rows[-1]
            minute = t // _US_PER_MIN
            minutes[minute] += 1
            keys[(minute, row[1], row[2] or 0, row[3] or 0)] += 1
        conn.executemany(_INSERT, rows)
        _count(conn, minutes, keys)
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'events'", (len(rows),))
        now_us = time.time_ns() // 1000
        latency = 0.0 if started is None else (time.perf_counter() - started) * 1000
        source = batch["source"]
        conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                now_us,
                len(rows),
                latency,
                source["instance_id"],
                source["integration_version"],
            ),
        )
        return Ack(batch_id, len(rows), False)

    def _row(self, conn: sqlite3.Connection, ev: dict[str, Any], t: int) -> tuple[Any, ...]:
        get = ev.get
        entity_id = get("entity_id")
        domain = get("domain")
        if domain is None and entity_id is not None:
            domain = entity_id.partition(".")[0]
        attrs = get("attributes")
        data = get("data")
        last_changed = get("last_changed")
        lc = None if last_changed is None else parse_time_us(last_changed)
        user = get("context_user_id")
        registry = tuple(get(k) for k in _REGISTRY_KEYS)
        cause = (get("cause"), get("cause_name"), get("cause_id"))
        snap = (
            get("outdoor_temperature"),
            get("weather_condition"),
            get("sun_elevation"),
            get("people_home"),
        )
        return (
            t,
            self._type(conn, ev["event_type"]),
            None if entity_id is None else self._entity(conn, entity_id),
            None if domain is None else self._string(conn, domain),
            0 if ev["origin"] == "LOCAL" else 1,
            encode_context(ev["context_id"]),
            None if user is None else self._string(conn, user),
            encode_context(get("context_parent_id")),
            self._state(conn, get("state")),
            self._state(conn, get("old_state")),
            _float(get("numeric_value")),
            None if lc is None else t - lc,
            _float(get("prev_state_seconds")),
            None if attrs is None else self._attributes(conn, attrs),
            None if data is None else orjson.dumps(data).decode(),
            None
            if registry == _NO_REGISTRY
            else self._tuple(conn, "registry", _REGISTRY_KEYS, registry),
            None if cause == _NO_CAUSE else self._tuple(conn, "causes", _CAUSE_COLS, cause),
            None if snap == _NO_SNAP else self._tuple(conn, "snapshots", _SNAP_COLS, snap),
        )


_NO_REGISTRY: Final = (None,) * len(_REGISTRY_KEYS)
_NO_CAUSE: Final = (None, None, None)
_NO_SNAP: Final = (None, None, None, None)
_CAUSE_COLS: Final = ("cause", "cause_name", "cause_id")
_SNAP_COLS: Final = ("outdoor_temperature", "weather_condition", "sun_elevation", "people_home")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _get_or_insert(conn: sqlite3.Connection, table: str, col: str, value: str) -> int:
    hit = conn.execute(f"SELECT id FROM {table} WHERE {col} = ?", (value,)).fetchone()
    if hit is not None:
        return int(hit[0])
    cur = conn.execute(f"INSERT INTO {table} ({col}) VALUES (?)", (value,))
    return int(cur.lastrowid or 0)


def _count(
    conn: sqlite3.Connection,
    minutes: Counter[int],
    keys: Counter[tuple[int, int, int, int]],
) -> None:
    conn.executemany(
        "INSERT INTO stat_minute VALUES (?, ?)"
        " ON CONFLICT (minute) DO UPDATE SET events = events + excluded.events",
        minutes.items(),
    )
    conn.executemany(
        "INSERT INTO stat_minute_key VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(*k, n) for k, n in keys.items()],
    )
    hours: Counter[tuple[int, int, int, int]] = Counter()
    for (minute, et, ent, dom), n in keys.items():
        hours[(minute // 60, et, ent, dom)] += n
    conn.executemany(
        "INSERT INTO stat_hour_key VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET n = n + excluded.n",
        [(*k, n) for k, n in hours.items()],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO dirty_hours VALUES (?)",
        [(h,) for h in {m // 60 for m in minutes}],
    )
