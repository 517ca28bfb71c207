"""Realistic enriched events and batches, as the integration ships them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import itertools
import sqlite3
from typing import Any

import orjson

from homeiq_addon.contract import ENTITY_FIELDS
from homeiq_addon.ingest.decode import decode_batch
from homeiq_addon.ingest.rows import event_rows
from homeiq_addon.store.db import EVENT_COLUMNS, INSERT_EVENT
from homeiq_addon.store.ids import EntityIds, Ids
from homeiq_addon.store.memory_counts import EventCounts
from homeiq_addon.store.ref_keys import CAUSE_KEYS

_counter = itertools.count()
BASE = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
ULID = "01JDAW3M6V2X8T9Q0RB4N5K7HC"


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(n: int) -> str:
    """A distinct ULID made, as Home Assistant makes a state's context, at the time of
    ``state_event(n)``: BASE + n seconds (to the millisecond)."""
    number = ((int(BASE.timestamp() * 1000) + 1000 * n) << 80) | n
    return "".join(_CROCKFORD[(number >> (5 * k)) & 31] for k in reversed(range(26)))


def state_event(i: int = 0, *, at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """A state_changed event of a temperature sensor with registry and cause enrichment."""
    t = (at or BASE) + timedelta(seconds=i, microseconds=i)
    event: dict[str, Any] = {
        "time_fired": t.isoformat(),
        "event_type": "state_changed",
        "origin": "LOCAL",
        "context_id": ulid(i),
        "context_user_id": None,
        "context_parent_id": None,
        "entity_id": f"sensor.living_room_temperature_{i % 7}",
        "domain": "sensor",
        "state": f"{20 + i % 10}.5",
        "old_state": f"{19 + i % 10}.5",
        "numeric_value": 20.5 + i % 10,
        "last_changed": t.isoformat(),
        "prev_state_seconds": 30.25,
        "attributes": {"unit_of_measurement": "°C", "device_class": "temperature"},
        "area_id": "living_room",
        "area": "Living Room",
        "floor": "Ground floor",
        "device_id": "a1b2c3d4e5f6",
        "device_name": "Living room thermometer",
        "device_manufacturer": "Aqara",
        "device_model": "WSDCGQ11LM",
        "labels": ["climate", "downstairs"],
        "device_class": "temperature",
        "state_class": "measurement",
        "unit": "°C",
        "friendly_name": "Living room temperature",
        "cause": "device",
        "cause_name": "zha",
        "cause_id": None,
        "outdoor_temperature": 4.5,
        "weather_condition": "cloudy",
        "sun_elevation": 12.25,
        "people_home": 2,
    }
    event.update(overrides)
    return event


def service_event(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """A call_service event caused by a user (no entity, data kept)."""
    event: dict[str, Any] = {
        "time_fired": (BASE + timedelta(seconds=i)).isoformat(),
        "event_type": "call_service",
        "origin": "LOCAL",
        "context_id": ulid(10_000 + i),
        "context_user_id": "9f2b1c0d8e7a6b5c4d3e2f1a0b9c8d7e",
        "data": {"domain": "light", "service": "turn_on", "service_data": {"brightness": 128}},
        "cause": "user",
        "cause_name": "Alice",
        "cause_id": "9f2b1c0d8e7a6b5c4d3e2f1a0b9c8d7e",
    }
    event.update(overrides)
    return event


def batch(
    events: list[dict[str, Any]] | None = None, batch_id: str | None = None
) -> dict[str, Any]:
    n = next(_counter)
    return {
        "batch_id": batch_id or f"batch-{n}",
        "source": {
            "instance_id": "0123456789abcdef0123456789abcdef",
            "integration_version": "0.1.0",
        },
        "events": events if events is not None else [state_event(i) for i in range(3)],
    }


def with_entities(body: dict[str, Any]) -> dict[str, Any]:
    """The same batch as the integration sends it to an add-on that reads ``entities``:
    each entity's fields (and the cause of its events that name none) once, every state
    event referring to them by index."""
    # Each event copied: only its own keys change, its values are shared.
    out = {**body, "events": [dict(event) for event in body["events"]]}
    entities: list[dict[str, Any]] = []
    index: dict[bytes, int] = {}
    for event in out["events"]:
        if event.get("entity_id") is None:
            continue
        facts = {name: event.pop(name) for name in ENTITY_FIELDS if name in event}
        if event.get("cause") in ("device", "integration"):  # the entity's default cause
            facts.update((name, event.pop(name)) for name in CAUSE_KEYS if name in event)
        key = orjson.dumps(facts)
        event["entity"] = index.setdefault(key, len(entities))
        if event["entity"] == len(entities):
            entities.append(facts)
    out["entities"] = entities
    return out


def with_columns(body: dict[str, Any], block: int = 100) -> dict[str, Any]:
    """The same batch with its events as blocks of `block` events in columns (contract
    EventColumns): every state event must refer to its entity (``with_entities``). A
    column no event of its block has a value for is left out."""
    events = body["events"]
    out = {name: value for name, value in body.items() if name != "events"}
    out["columns"] = []
    for start in range(0, len(events), block):
        part = events[start : start + block]
        names = dict.fromkeys(name for event in part for name in event)
        out["columns"].append(
            {
                name: [event.get(name) for event in part]
                for name in names
                if any(event.get(name) is not None for event in part)
                or name in ("time_fired", "event_type", "origin", "context_id")
            }
        )
    return out


def write_into(conn: sqlite3.Connection, events: list[dict[str, Any]]) -> None:
    """A batch of ``events`` written straight into a database, as the store's writer
    writes one (rows and counts), without a Store: for a database of an older schema
    version, which opening a Store would migrate first."""
    ids, counts = Ids(), EventCounts()
    entity_columns = [r[1] for r in conn.execute("PRAGMA table_info(entities)")]
    if "domain_ref" not in entity_columns:  # before schema 9
        ids.entities = _EntityIdsBefore9(ids.strings)
    rows, keys = event_rows(ids, conn, decode_batch(orjson.dumps(batch(events))))
    if "domain_ref" not in entity_columns:
        # Every row kept its domain then, the entity's too.
        at = EVENT_COLUMNS.index("domain_ref"), EVENT_COLUMNS.index("entity_ref")
        rows = [
            row
            if row[at[0]] is not None or row[at[1]] is None
            else (*row[: at[0]], _entity_domain_ref(conn, ids, row[at[1]]), *row[at[0] + 1 :])
            for row in rows
        ]
    if "time_since_2026" in [r[1] for r in conn.execute("PRAGMA table_info(events)")]:
        # From schema 9 on, the events table is the writer's own (some columns computed).
        conn.executemany(INSERT_EVENT, rows)
    else:
        columns = ", ".join(EVENT_COLUMNS)
        conn.executemany(
            f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
            rows,
        )
    counts.add(keys)
    counts.job_done(True)
    counts.before_commit(conn)


class _EntityIdsBefore9(EntityIds):
    """Entities as schema versions before 9 keep them: no domain_ref column."""

    def _add(self, conn: sqlite3.Connection, value: str) -> int:
        cur = conn.execute(
            "INSERT INTO entities (entity_id, domain) VALUES (?, ?)",
            (value, value.partition(".")[0]),
        )
        return int(cur.lastrowid or 0)


def _entity_domain_ref(conn: sqlite3.Connection, ids: Ids, entity_ref: int) -> int:
    (domain,) = conn.execute("SELECT domain FROM entities WHERE id = ?", (entity_ref,)).fetchone()
    return ids.strings.get_or_add(conn, domain)
