"""Hourly and daily rollups per entity, built from the ``dirty_hours`` the ingest marks.

Each dirty hour is rebuilt from the raw events in one writer transaction that also
clears its ``dirty_hours`` row, so the job is idempotent and a crash resumes where it
stopped. Only hours that have ended are built: time in state runs to the end of the hour.
Days are built from the hourly rows once the day has ended, which also works after the
raw events of that day are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import sqlite3
import time
from typing import Any, Final

import orjson

from ..times import US_PER_HOUR
from . import source

HOUR_S: Final = 3600


@dataclass(slots=True)
class Agg:
    """The figures of one entity over one period."""

    count: int = 0
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    events: int = 0
    transitions: int = 0
    time_in_state: dict[str, float] = field(default_factory=dict)
    last_state: str | None = None

    def add_value(self, value: float) -> None:
        self.count += 1
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        self.sum = value if self.sum is None else self.sum + value

    def hold(self, state: str | None, seconds: float) -> None:
        if state is not None and seconds > 0:
            self.time_in_state[state] = self.time_in_state.get(state, 0.0) + seconds

    def merge(self, other: Agg) -> None:
        """Fold a following period in (numbers, transitions, time in state)."""
        for value in (other.min, other.max):
            if value is not None:
                self.min = value if self.min is None else min(self.min, value)
                self.max = value if self.max is None else max(self.max, value)
        if other.sum is not None:
            self.sum = other.sum if self.sum is None else self.sum + other.sum
        self.count += other.count
        self.events += other.events
        self.transitions += other.transitions
        for state, seconds in other.time_in_state.items():
            self.hold(state, seconds)
        self.last_state = other.last_state

    def row(self) -> tuple[Any, ...]:
        tis = orjson.dumps({k: round(v, 6) for k, v in self.time_in_state.items()}).decode()
        return (self.count, self.min, self.max, self.sum, self.events, self.transitions, tis,
                self.last_state)  # fmt: skip


_COLUMNS: Final = "count, min, max, sum, events, transitions, time_in_state, last_state"


def agg_from_row(row: tuple[Any, ...]) -> Agg:
    count, vmin, vmax, vsum, events, transitions, tis, last = row
    return Agg(count, vmin, vmax, vsum, events, transitions, orjson.loads(tis), last)


# Per-entity lookups run inside SQLite over a JSON list of entity ids: one statement per
# hour instead of several per entity keeps a build step short.
_PREVIOUS: Final = (
    "SELECT j.value, (SELECT hour FROM rollups_hourly WHERE entity_id = j.value AND hour < ?1"
    " ORDER BY hour DESC LIMIT 1), (SELECT last_state FROM rollups_hourly"
    " WHERE entity_id = j.value AND hour < ?1 ORDER BY hour DESC LIMIT 1) FROM json_each(?2) j"
)
_MARK_NEXT: Final = (
    "INSERT OR IGNORE INTO dirty_hours(hour) SELECT h FROM (SELECT (SELECT hour"
    " FROM rollups_hourly WHERE entity_id = j.value AND hour > ?1 ORDER BY hour LIMIT 1) AS h"
    " FROM json_each(?2) j) WHERE h IS NOT NULL"
)
_UPSERT: Final = (
    f"INSERT OR REPLACE INTO {{table}} (entity_id, {{column}}, {_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _states_before(conn: sqlite3.Connection, entities: list[str], hour: int) -> dict[str, Any]:
    """Each entity's state when the hour began: the last rolled-up hour's end state, or
    (for an entity seen for the first time) its last raw state event."""
    names = orjson.dumps(entities).decode()
    found: dict[str, Any] = {}
    for entity_id, prev_hour, rolled in conn.execute(_PREVIOUS, (hour, names)):
        found[entity_id] = (
            rolled
            if prev_hour is not None
            else source.previous_state(conn, entity_id, hour * US_PER_HOUR)[1]
        )
    return found


def _fold(events: list[tuple[int, Any, Any]], current: Any, start_us: int, end_us: int) -> Agg:
    agg = Agg()
    cursor_us = start_us
    for time_us, state, value in events:
        agg.events += 1
        if value is not None:
            agg.add_value(value)
        agg.hold(current, (time_us - cursor_us) / 1e6)
        if current is not None and state != current:
            agg.transitions += 1
        current, cursor_us = state, time_us
    agg.hold(current, (end_us - cursor_us) / 1e6)
    agg.last_state = current
    return agg


_CHUNK: Final = 32  # entities per statement group; the deadline is checked between chunks
# The events of the hour being built in slices, so that a continuation slice does not
# read them again. Only a continuation (after != "") uses it; an event arriving between
# slices marks the hour dirty again, so it is rebuilt from the database afterwards.
_HOUR_EVENTS: dict[int, dict[str, list[tuple[int, Any, Any]]]] = {}


def build_hour(conn: sqlite3.Connection, hour: int, after: str, deadline: float) -> str | None:
    """Rebuild the hour's rollups of the entities sorted after ``after``, until the
    deadline (perf_counter) passes; returns the last entity done, or None when the hour
    is complete. Slices keep every writer step short on a busy hour."""
    start_us, end_us = hour * US_PER_HOUR, (hour + 1) * US_PER_HOUR
    by_entity = _HOUR_EVENTS.get(hour) if after else None
    if by_entity is None:
        by_entity = {}
        for entity_id, time_us, state, value in source.hour_events(conn, start_us, end_us):
            by_entity.setdefault(entity_id, []).append((time_us, state, value))
        _HOUR_EVENTS.clear()
        _HOUR_EVENTS[hour] = by_entity
    entities = [e for e in by_entity if e > after]  # already sorted by the query
    for first in range(0, len(entities), _CHUNK):
        chunk = entities[first : first + _CHUNK]
        _hour_chunk(conn, hour, {e: by_entity[e] for e in chunk})
        if time.perf_counter() > deadline and first + _CHUNK < len(entities):
            return chunk[-1]
    _HOUR_EVENTS.pop(hour, None)
    return None


def _hour_chunk(
    conn: sqlite3.Connection, hour: int, by_entity: dict[str, list[tuple[int, Any, Any]]]
) -> None:
    start_us, end_us = hour * US_PER_HOUR, (hour + 1) * US_PER_HOUR
    names = orjson.dumps(list(by_entity)).decode()
    old = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT entity_id, events, last_state FROM rollups_hourly"
            " WHERE hour = ? AND entity_id IN (SELECT value FROM json_each(?))",
            (hour, names),
        )
    }
    before = _states_before(conn, list(by_entity), hour)
    rows, moved = [], []
    for entity_id, events in by_entity.items():
        previous = old.get(entity_id)
        if previous is not None and previous[0] > len(events):
            # Some of this hour's raw events were purged since it was rolled up; a late
            # event must not replace the complete figures with partial ones.
            continue
        agg = _fold(events, before[entity_id], start_us, end_us)
        rows.append((entity_id, hour, *agg.row()))
        if previous is None or previous[1] != agg.last_state:
            moved.append(entity_id)
    conn.executemany(_UPSERT.format(table="rollups_hourly", column="hour"), rows)
    if moved:
        # A late event changed how an entity left the hour: its next rolled-up hour
        # started from a different state and is rebuilt too.
        conn.execute(_MARK_NEXT, (hour, orjson.dumps(moved).decode()))


def build_day(conn: sqlite3.Connection, day: int, after: str, deadline: float) -> str | None:
    """Rebuild daily rollups from the hourly rows, sliced like ``build_hour``."""
    first, last = day * 24, day * 24 + 24
    # The day's entities from the (covering) hour index; without INDEXED BY, SQLite walks
    # the primary key from ``after`` across every hour of every later entity.
    entities: list[str] = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT entity_id FROM rollups_hourly INDEXED BY rollups_hourly_hour"
            " WHERE hour >= ? AND hour < ? AND entity_id > ? ORDER BY entity_id",
            (first, last, after),
        )
    ]
    for start in range(0, len(entities), _CHUNK):
        chunk_ids = entities[start : start + _CHUNK]
        chunk: dict[str, list[tuple[int, Agg]]] = {}
        for entity_id in chunk_ids:
            # One primary-key range per entity: (entity, first hour) .. (entity, last hour).
            chunk[entity_id] = [
                (row[0], agg_from_row(row[1:]))
                for row in conn.execute(
                    f"SELECT hour, {_COLUMNS} FROM rollups_hourly"
                    " WHERE entity_id = ? AND hour >= ? AND hour < ? ORDER BY hour",
                    (entity_id, first, last),
                )
            ]
        _day_chunk(conn, day, chunk)
        if time.perf_counter() > deadline and start + _CHUNK < len(entities):
            return chunk_ids[-1]
    return None


def _day_chunk(
    conn: sqlite3.Connection, day: int, by_entity: dict[str, list[tuple[int, Agg]]]
) -> None:
    first, last = day * 24, day * 24 + 24
    names = orjson.dumps(list(by_entity)).decode()
    carried_in = {e: s for e, _, s in conn.execute(_PREVIOUS, (first, names))}
    old = dict(
        conn.execute(
            "SELECT entity_id, events FROM rollups_daily"
            " WHERE day = ? AND entity_id IN (SELECT value FROM json_each(?))",
            (day, names),
        ).fetchall()
    )
    rows = []
    for entity_id, hours in by_entity.items():
        day_agg = Agg()
        carried = carried_in.get(entity_id)
        expected = first
        for hour, agg in hours:
            # Hours without a row had no events: the entity held its state throughout.
            day_agg.hold(carried, (hour - expected) * HOUR_S)
            day_agg.merge(agg)
            carried, expected = agg.last_state, hour + 1
        day_agg.hold(carried, (last - expected) * HOUR_S)
        day_agg.last_state = carried
        if old.get(entity_id, 0) > day_agg.events:
            continue  # hourly rows of this day were purged already: keep the full figures
        rows.append((entity_id, day, *day_agg.row()))
    conn.executemany(_UPSERT.format(table="rollups_daily", column="day"), rows)


def next_dirty_hour(conn: sqlite3.Connection, before_hour: int) -> int | None:
    row = conn.execute(
        "SELECT hour FROM dirty_hours WHERE hour < ? ORDER BY hour LIMIT 1", (before_hour,)
    ).fetchone()
    return None if row is None else int(row[0])


def next_dirty_day(conn: sqlite3.Connection, before_day: int) -> int | None:
    row = conn.execute(
        "SELECT day FROM rollup_dirty_days WHERE day < ? ORDER BY day LIMIT 1", (before_day,)
    ).fetchone()
    return None if row is None else int(row[0])


def point(agg: Agg, start_iso: str) -> dict[str, Any]:
    """The history API's shape: numbers when the entity had numeric states."""
    if agg.count:
        assert agg.sum is not None
        return {"start": start_iso, "count": agg.count, "min": agg.min, "max": agg.max,
                "mean": agg.sum / agg.count, "sum": agg.sum}  # fmt: skip
    return {"start": start_iso, "transitions": agg.transitions,
            "time_in_state": agg.time_in_state}  # fmt: skip
