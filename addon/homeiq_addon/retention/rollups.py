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
from typing import Any, Final

import orjson

from . import source

HOUR_US: Final = 3_600_000_000
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


def _state_before(conn: sqlite3.Connection, entity_id: str, hour: int) -> str | None:
    found, state = source.previous_state(conn, entity_id, hour * HOUR_US)
    if found:
        return state
    row = conn.execute(
        "SELECT last_state FROM rollups_hourly WHERE entity_id = ? AND hour < ?"
        " ORDER BY hour DESC LIMIT 1",
        (entity_id, hour),
    ).fetchone()
    return None if row is None else row[0]


def build_hour(conn: sqlite3.Connection, hour: int) -> int:
    """Rebuild every entity's rollup for one hour; returns the entity rows written."""
    start_us, end_us = hour * HOUR_US, (hour + 1) * HOUR_US
    by_entity: dict[str, list[tuple[int, str | None, float | None]]] = {}
    for entity_id, time_us, state, value in source.hour_events(conn, start_us, end_us):
        by_entity.setdefault(entity_id, []).append((time_us, state, value))
    for entity_id, events in by_entity.items():
        old = conn.execute(
            f"SELECT {_COLUMNS} FROM rollups_hourly WHERE entity_id = ? AND hour = ?",
            (entity_id, hour),
        ).fetchone()
        if old is not None and old[4] > len(events):
            # Some of this hour's raw events were purged since it was rolled up; a late
            # event must not replace the complete figures with partial ones.
            continue
        agg = Agg()
        current = _state_before(conn, entity_id, hour)
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
        conn.execute(
            f"INSERT OR REPLACE INTO rollups_hourly (entity_id, hour, {_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entity_id, hour, *agg.row()),
        )
        if old is None or old[7] != agg.last_state:
            # A late event changed how this entity left the hour: its next rolled-up
            # hour started from a different state and must be rebuilt too.
            nxt = conn.execute(
                "SELECT hour FROM rollups_hourly WHERE entity_id = ? AND hour > ?"
                " ORDER BY hour LIMIT 1",
                (entity_id, hour),
            ).fetchone()
            if nxt is not None:
                conn.execute("INSERT OR IGNORE INTO dirty_hours(hour) VALUES (?)", nxt)
    conn.execute("DELETE FROM dirty_hours WHERE hour = ?", (hour,))
    conn.execute("INSERT OR IGNORE INTO rollup_dirty_days(day) VALUES (?)", (hour // 24,))
    return len(by_entity)


def build_day(conn: sqlite3.Connection, day: int) -> int:
    """Rebuild every entity's daily rollup from its hourly rows; returns rows written."""
    first, last = day * 24, day * 24 + 24
    rows = conn.execute(
        f"SELECT entity_id, hour, {_COLUMNS} FROM rollups_hourly"
        " WHERE hour >= ? AND hour < ? ORDER BY entity_id, hour",
        (first, last),
    ).fetchall()
    by_entity: dict[str, list[tuple[int, Agg]]] = {}
    for row in rows:
        by_entity.setdefault(row[0], []).append((row[1], agg_from_row(row[2:])))
    conn.execute("DELETE FROM rollups_daily WHERE day = ?", (day,))
    for entity_id, hours in by_entity.items():
        day_agg = Agg()
        prev = conn.execute(
            "SELECT last_state FROM rollups_hourly WHERE entity_id = ? AND hour < ?"
            " ORDER BY hour DESC LIMIT 1",
            (entity_id, first),
        ).fetchone()
        carried = None if prev is None else prev[0]
        expected = first
        for hour, agg in hours:
            # Hours without a row had no events: the entity held its state throughout.
            day_agg.hold(carried, (hour - expected) * HOUR_S)
            day_agg.merge(agg)
            carried, expected = agg.last_state, hour + 1
        day_agg.hold(carried, (last - expected) * HOUR_S)
        day_agg.last_state = carried
        conn.execute(
            f"INSERT INTO rollups_daily (entity_id, day, {_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entity_id, day, *day_agg.row()),
        )
    conn.execute("DELETE FROM rollup_dirty_days WHERE day = ?", (day,))
    return len(by_entity)


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
