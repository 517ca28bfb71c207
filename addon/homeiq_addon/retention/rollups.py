"""Hourly and daily rollups per entity, built from the ``dirty_hours`` the ingest marks.

Each dirty hour is rebuilt from the raw events in one writer transaction that also
clears its ``dirty_hours`` row, so the job is idempotent and a crash resumes where it
stopped. Only hours that have ended are built: time in state runs to the end of the hour.
Days are built from the hourly rows once the day has ended, which also works after the
raw events of that day are gone.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Final

import orjson

from ..store import rollup_rows
from ..store.rollup_rows import DAILY, HOURLY, Agg, log_rollup_changes
from ..times import US_PER_HOUR
from . import source

__all__ = [
    "Agg",
    "build_days",
    "build_hours",
    "dirty_days",
    "dirty_run",
    "next_dirty_day",
    "next_dirty_hour",
    "point",
]

HOUR_S: Final = 3600


def _last_states(conn: sqlite3.Connection, refs: list[int], day: int) -> dict[int, str | None]:
    """Each entity's state at the end of its last rolled-up hour before ``day``; entities
    with no earlier hourly row are left out."""
    found: dict[int, str | None] = {}
    rows = conn.execute(
        "SELECT j.value, (SELECT hour_figures FROM rollups_hourly WHERE entity_ref = j.value"
        " AND day < ?1 ORDER BY day DESC LIMIT 1) FROM json_each(?2) j",
        (day, orjson.dumps(refs).decode()),
    )
    for ref, blob in rows:
        if blob is not None:
            found[ref] = rollup_rows.final_state(blob)
    return found


def _next_rows(conn: sqlite3.Connection, refs: list[int], day: int) -> list[int]:
    """The first rolled-up hour of each entity's next hourly row after ``day``."""
    rows = conn.execute(
        "SELECT (SELECT day FROM rollups_hourly WHERE entity_ref = j.value AND day > ?1"
        " ORDER BY day LIMIT 1), (SELECT hour_figures FROM rollups_hourly"
        " WHERE entity_ref = j.value AND day > ?1 ORDER BY day LIMIT 1) FROM json_each(?2) j",
        (day, orjson.dumps(refs).decode()),
    )
    return [d * 24 + rollup_rows.first_hour(b) for d, b in rows if d is not None]


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


_CHUNK: Final = 16  # entities per statement group; the deadline is checked between chunks
# A run of dirty hours is built together (each entity's day row is written once per run)
# while it holds no more events than this, so a catch-up does not repack a day 24 times;
# few enough that the step that reads them (and builds the first slice) stays short.
RUN_EVENTS: Final = 5_000
type _Events = list[tuple[int, Any, Any]]
# The events of the run being built in slices, so that a continuation slice does not
# read them again; claiming a run (``dirty_run``) forgets them. An event arriving
# between slices marks its hour dirty again, so it is rebuilt from the database afterwards.
_RUN_EVENTS: dict[tuple[int, int], dict[str, tuple[int, _Events]]] = {}


def dirty_run(conn: sqlite3.Connection, before_hour: int) -> tuple[int, int] | None:
    """The next run [first, end) of consecutive dirty hours before ``before_hour``, within
    one day and holding at most about RUN_EVENTS events (always at least one hour)."""
    _RUN_EVENTS.clear()
    first = next_dirty_hour(conn, before_hour)
    if first is None:
        return None
    limit = min(before_hour, (first // 24 + 1) * 24)
    dirty = {h for (h,) in conn.execute(
        "SELECT hour FROM dirty_hours WHERE hour >= ? AND hour < ?", (first, limit))}  # fmt: skip
    held = source.events_by_hour(conn, first * US_PER_HOUR, limit * US_PER_HOUR)
    end, total = first + 1, held.get(first, 0)
    while end in dirty and total + held.get(end, 0) <= RUN_EVENTS:
        total += held.get(end, 0)
        end += 1
    return first, end


def build_hours(
    conn: sqlite3.Connection, run: tuple[int, int], after: str, deadline: float
) -> str | None:
    """Rebuild the rollups of the hours [first, end) of one day for the entities sorted
    after ``after``, until the deadline (perf_counter) passes; returns the last entity
    done ("": none yet), or None when the run is complete. Slices keep every writer
    step short."""
    first, end = run
    by_entity = _RUN_EVENTS.get(run)
    if by_entity is None:
        started = time.perf_counter()
        by_entity = {}
        rows = source.hour_events(conn, first * US_PER_HOUR, end * US_PER_HOUR)
        for entity_id, ref, time_us, state, value in rows:
            by_entity.setdefault(entity_id, (ref, []))[1].append((time_us, state, value))
        _RUN_EVENTS[run] = by_entity
        if time.perf_counter() * 2 - started > deadline:
            return after  # as long again would pass the deadline: build in the next step
    entities = [e for e in by_entity if e > after]  # already sorted by the query
    for start in range(0, len(entities), _CHUNK):
        chunk = entities[start : start + _CHUNK]
        _run_chunk(conn, first // 24, {e: by_entity[e] for e in chunk})
        if time.perf_counter() > deadline and start + _CHUNK < len(entities):
            return chunk[-1]
    _RUN_EVENTS.pop(run, None)
    return None


def _by_hour(events: _Events) -> dict[int, _Events]:
    hours: dict[int, _Events] = {}
    for item in events:
        hours.setdefault(item[0] // US_PER_HOUR, []).append(item)
    return hours


def _run_chunk(
    conn: sqlite3.Connection, day: int, by_entity: dict[str, tuple[int, _Events]]
) -> None:
    refs = [ref for ref, _ in by_entity.values()]
    stored = rollup_rows.read_rows(conn, HOURLY, refs, day)
    days_before = _last_states(conn, refs, day)
    rows: list[tuple[int, int, dict[int, Agg]]] = []
    changed, dirty, moved = [], [], []
    for entity_id, (ref, events) in by_entity.items():
        hours = stored.get(ref, {})
        built, moved_from = set(), []
        for hour, hour_events in _by_hour(events).items():
            of_day = hour - day * 24
            previous = hours.get(of_day)
            if previous is not None and previous.events > len(hour_events):
                # Some of this hour's raw events were purged since it was rolled up; a
                # late event must not replace the complete figures with partial ones.
                continue
            before = [h for h in hours if h < of_day]
            if before:
                carried = hours[max(before)].last_state
            elif ref in days_before:
                carried = days_before[ref]
            else:
                carried = source.previous_state(conn, entity_id, hour * US_PER_HOUR)[1]
            agg = _fold(hour_events, carried, hour * US_PER_HOUR, (hour + 1) * US_PER_HOUR)
            hours[of_day] = agg
            built.add(of_day)
            changed.append((entity_id, hour))
            if previous is None or previous.last_state != agg.last_state:
                moved_from.append(of_day)
        if not built:
            continue
        rows.append((ref, day, hours))
        # A late event changed how the entity left an hour: its next rolled-up hour
        # started from a different state and is rebuilt too (unless built just now).
        for of_day in moved_from:
            following = min((h for h in hours if h > of_day), default=None)
            if following is None:
                moved.append(ref)
            elif following not in built:
                dirty.append((day * 24 + following,))
    rollup_rows.write_rows(conn, HOURLY, rows)
    log_rollup_changes(conn, "hour", changed)
    dirty += [(h,) for h in _next_rows(conn, sorted(set(moved)), day)] if moved else []
    conn.executemany("INSERT OR IGNORE INTO dirty_hours(hour) VALUES (?)", dirty)


def dirty_days(conn: sqlite3.Connection, before_day: int) -> tuple[int, int] | None:
    """The next run [first, end) of consecutive dirty days before ``before_day`` within
    one row of the daily tier, so that a catch-up writes each row once, not per day."""
    first = next_dirty_day(conn, before_day)
    if first is None:
        return None
    limit = min(before_day, (first // DAILY.per_row + 1) * DAILY.per_row)
    dirty = conn.execute(
        "SELECT day FROM rollup_dirty_days WHERE day >= ? AND day < ? ORDER BY day",
        (first, limit),
    ).fetchall()
    end = first
    for (day,) in dirty:
        if day != end:
            break
        end += 1
    return first, end


def build_days(
    conn: sqlite3.Connection, run: tuple[int, int], after: str, deadline: float
) -> str | None:
    """Rebuild daily rollups of the days [first, end) from the hourly rows, sliced like
    ``build_hours``."""
    first, end = run
    # The run's next entities: one primary-key probe per entity (there is no index by
    # day), no more than a step gets through.
    entities: list[tuple[str, int]] = conn.execute(
        "SELECT e.entity_id, e.id FROM entities e WHERE e.entity_id > ? AND EXISTS"
        " (SELECT 1 FROM rollups_hourly r WHERE r.entity_ref = e.id AND r.day >= ?"
        " AND r.day < ?) ORDER BY e.entity_id LIMIT 256",
        (after, first, end),
    ).fetchall()
    more = len(entities) == 256  # entities after these may have days of the run too
    size = max(1, _CHUNK // (end - first))  # about _CHUNK entity-days per slice
    for start in range(0, len(entities), size):
        chunk = entities[start : start + size]
        _days_chunk(conn, run, dict(chunk))
        if start + size >= len(entities):
            return chunk[-1][0] if more else None
        if time.perf_counter() > deadline:
            return chunk[-1][0]
    return None


def _days_chunk(conn: sqlite3.Connection, run: tuple[int, int], refs: dict[str, int]) -> None:
    first, end = run
    hourly: dict[int, dict[int, bytes]] = {}
    for ref, day, blob in conn.execute(
        "SELECT entity_ref, day, hour_figures FROM rollups_hourly WHERE day >= ? AND day < ?"
        " AND entity_ref IN (SELECT value FROM json_each(?))",
        (first, end, orjson.dumps(list(refs.values())).decode()),
    ):
        hourly.setdefault(ref, {})[day] = blob
    carried_in = _last_states(conn, list(refs.values()), first)
    month = first // DAILY.per_row
    stored = rollup_rows.read_rows(conn, DAILY, list(refs.values()), month)
    rows, changed = [], []
    for entity_id, ref in refs.items():
        carried = carried_in.get(ref)
        days = stored.get(ref, {})
        built = False
        for day, blob in sorted(hourly.get(ref, {}).items()):
            day_agg, carried = _day_of(day, rollup_rows.unpack_hours(blob), carried)
            place = day - month * DAILY.per_row
            if place in days and days[place].events > day_agg.events:
                continue  # hourly rows of this day were purged already: keep the full figures
            days[place] = day_agg
            changed.append((entity_id, day))
            built = True
        if built:
            rows.append((ref, month, days))
    rollup_rows.write_rows(conn, DAILY, rows)
    log_rollup_changes(conn, "day", changed)


def _day_of(day: int, hours: dict[int, Agg], carried: str | None) -> tuple[Agg, str | None]:
    """A day's figures from its hourly ones, and the state it ended in."""
    first, last = day * 24, day * 24 + 24
    day_agg = Agg()
    expected = first
    for of_day, agg in sorted(hours.items()):
        hour = first + of_day
        # Hours without a row had no events: the entity held its state throughout.
        day_agg.hold(carried, (hour - expected) * HOUR_S)
        day_agg.merge(agg)
        carried, expected = agg.last_state, hour + 1
    day_agg.hold(carried, (last - expected) * HOUR_S)
    day_agg.last_state = carried
    return day_agg, carried


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
