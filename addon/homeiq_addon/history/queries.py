"""Reads of raw events: the /events listing and raw /history points."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import sqlite3
from typing import Any, Final

import orjson

from ..store import time_blocks
from ..store.codec import decode_context
from ..store.compact_events import NUMERIC_VALUE, PREV_STATE_SECONDS
from ..store.deferred_index import entity_ids
from ..store.ids import entity_ref
from ..store.ref_keys import CAUSE_KEYS, REGISTRY_KEYS, SNAP_KEYS
from ..times import us_to_iso

STATE_TYPES_SQL: Final = (
    "SELECT id FROM event_types WHERE event_type IN ('state_changed', 'state_reported')"
)
_SELECT: Final = f"""
SELECT e.id, e.time_fired, t.event_type, e.origin, e.context_id, cu.value,
       e.context_parent_id, e.data, n.entity_id, COALESCE(d.value, n.domain),
       CASE typeof(e.state) WHEN 'integer' THEN s1.value ELSE e.state END,
       CASE typeof(e.old_state) WHEN 'integer' THEN s2.value ELSE e.old_state END,
       {NUMERIC_VALUE}, e.time_fired - e.last_changed_ago, {PREV_STATE_SECONDS}, a.json,
       r.area_id, r.area, r.floor, r.device_id, r.device_name, r.device_manufacturer,
       r.device_model, r.labels, r.device_class, r.state_class, r.unit, r.friendly_name,
       c.cause, c.cause_name, c.cause_id,
       p.outdoor_temperature, p.weather_condition, p.sun_elevation, p.people_home
FROM events e
JOIN event_types t ON t.id = e.event_type_id
LEFT JOIN strings cu ON cu.id = e.context_user_ref
LEFT JOIN entities n ON n.id = e.entity_ref
LEFT JOIN strings d ON d.id = e.domain_ref
LEFT JOIN strings s1 ON s1.id = e.state
LEFT JOIN strings s2 ON s2.id = e.old_state
LEFT JOIN attributes a ON a.id = e.attributes_ref
LEFT JOIN registry r ON r.id = e.registry_ref
LEFT JOIN causes c ON c.id = e.cause_ref
LEFT JOIN snapshots p ON p.id = e.snapshot_ref
"""
_PLAIN: Final = (
    "entity_id",
    "domain",
    "state",
    "old_state",
    "numeric_value",
    "last_changed",
    "prev_state_seconds",
    "attributes",
    *REGISTRY_KEYS,
    *CAUSE_KEYS,
    *SNAP_KEYS,
)
_JSON_COLS: Final = frozenset({"attributes", "labels"})


@dataclass(slots=True)
class EventFilter:
    entity_id: str | None = None
    domain: str | None = None
    event_type: str | None = None
    area: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    limit: int = 100
    after: tuple[int, int] | None = None  # (time_fired, id) of the last row already seen


def _event(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored row as the event dict it was ingested as (null fields left out), plus id."""
    out: dict[str, Any] = {
        "id": row[0],
        "time_fired": us_to_iso(row[1]),
        "event_type": row[2],
        "origin": "REMOTE" if row[3] else "LOCAL",
        "context_id": decode_context(row[4], row[1]),
    }
    if row[5] is not None:
        out["context_user_id"] = row[5]
    if row[6] is not None:
        out["context_parent_id"] = decode_context(row[6])
    # JSON columns go into the answer as stored, not parsed and written again: `data`
    # may nest as deep as orjson writes, and the answer's own levels would push it past.
    if row[7] is not None:
        out["data"] = orjson.Fragment(row[7])
    for name, value in zip(_PLAIN, row[8:], strict=True):
        if value is None:
            continue
        if name in _JSON_COLS:
            out[name] = orjson.Fragment(value)
        elif name == "last_changed":
            out[name] = us_to_iso(value)
        else:
            out[name] = value
    return out


def _id_of(conn: sqlite3.Connection, table: str, col: str, value: str) -> int | None:
    row = conn.execute(f"SELECT id FROM {table} WHERE {col} = ?", (value,)).fetchone()
    return None if row is None else int(row[0])


def list_events(
    conn: sqlite3.Connection, f: EventFilter
) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """Newest first; returns (events, last) where last is the (time_fired, id) of the
    page's last event when a next page exists, else None."""
    where: list[str] = []
    args: list[Any] = []
    # Resolve names to ids first: an unknown name means no rows, and a bound integer
    # lets the planner pick an index.
    entity: int | None = None
    if f.entity_id is not None:
        entity = entity_ref(conn, f.entity_id)
        if entity is None:
            return [], None
    if f.event_type is not None:
        ref = _id_of(conn, "event_types", "event_type", f.event_type)
        if ref is None:
            return [], None
        where.append("e.event_type_id = ?")
        args.append(ref)
    if f.domain is not None:
        ref = _id_of(conn, "strings", "value", f.domain)
        if ref is None:
            return [], None
        # An event of an entity of that domain stores none of its own (store/ids.py).
        where.append(
            "(e.domain_ref = ? OR e.domain_ref IS NULL AND e.entity_ref IN"
            " (SELECT id FROM entities WHERE domain_ref = ?))"
        )
        args += [ref, ref]
    if f.area is not None:
        where.append("e.registry_ref IN (SELECT id FROM registry WHERE area = ? OR area_id = ?)")
        args += [f.area, f.area]
    if entity is None:
        groups = _in_time_order(conn, f, where, args)
    else:
        groups = entity_ids(
            conn, entity, start_us=f.start_us, end_us=f.end_us, before=f.after,
            newest_first=True, limit=f.limit + 1,
        )  # fmt: skip
    rows = _newest_first(conn, groups, where, args, f.limit + 1)
    page = rows[: f.limit]
    last = (int(page[-1][1]), int(page[-1][0])) if len(rows) > f.limit else None
    return [_event(r) for r in page], last


def _in_time_order(
    conn: sqlite3.Connection, f: EventFilter, where: list[str], args: list[Any]
) -> Iterator[tuple[str, list[Any]]]:
    """The events of every entity in the filter's range, newest first: the blocks of ids
    in time order (store/time_blocks.py); the time conditions join ``where``."""
    for cond, bound in (("e.time_fired >= ?", f.start_us), ("e.time_fired < ?", f.end_us)):
        if bound is not None:
            where.append(cond)
            args.append(bound)
    end_us = f.end_us
    if f.after is not None:
        where.append("(e.time_fired, e.id) < (?, ?)")
        args += list(f.after)
        end_us = f.after[0] + 1 if end_us is None else min(end_us, f.after[0] + 1)
    return time_blocks.in_time_order(conn, f.start_us, end_us, newest_first=True)


def _newest_first(
    conn: sqlite3.Connection,
    groups: Iterator[tuple[str, list[Any]]],
    where: list[str],
    args: list[Any],
    limit: int,
) -> list[tuple[Any, ...]]:
    """The first ``limit`` events, newest first, of groups in time order, until one fills
    the page. Each group's ids are sorted without their rows (sorting whole rows spills
    to disk past a few thousand), then the page's rows are read by id."""
    found: list[int] = []
    for ids, params in groups:
        found += [
            row[0]
            for row in conn.execute(
                f"SELECT e.id FROM events e WHERE {' AND '.join([ids, *where])}"
                " ORDER BY e.time_fired DESC, e.id DESC LIMIT ?",
                (*params, *args, limit - len(found)),
            )
        ]
        if len(found) >= limit:
            break
    rows = conn.execute(
        _SELECT + " WHERE e.id IN (SELECT value FROM json_each(?))", (orjson.dumps(found).decode(),)
    ).fetchall()
    rows.sort(key=lambda row: (row[1], row[0]), reverse=True)
    return rows


def raw_history(
    conn: sqlite3.Connection, entity_id: str, start_us: int, end_us: int, limit: int
) -> list[dict[str, Any]]:
    """The entity's state events in [start, end), oldest first."""
    ref = entity_ref(conn, entity_id)
    if ref is None:
        return []
    points: list[dict[str, Any]] = []
    for ids, params in entity_ids(conn, ref, start_us=start_us, end_us=end_us, limit=limit):
        rows = conn.execute(
            "SELECT e.time_fired,"
            " CASE typeof(e.state) WHEN 'integer' THEN s.value ELSE e.state END,"
            f" {NUMERIC_VALUE} FROM events e LEFT JOIN strings s ON s.id = e.state"
            f" WHERE {ids} AND e.event_type_id IN ({STATE_TYPES_SQL})"
            " ORDER BY e.time_fired, e.id LIMIT ?",
            (*params, limit - len(points)),
        )
        points += [{"time": us_to_iso(t), "state": s, "numeric_value": v} for t, s, v in rows]
        if len(points) >= limit:
            break
    return points
