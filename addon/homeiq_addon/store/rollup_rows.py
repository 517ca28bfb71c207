"""Rollup rows, packed: several periods of one entity per row in each tier.

A row per entity and hour cost more than the raw event it summed up (about one event per
entity-hour is common), so retention made the file grow. ``rollups_hourly`` keeps one
row per (entity, day) whose ``hour_figures`` blob holds that day's hourly figures, and
``rollups_daily`` one row per (entity, 32-day block: ``month``) whose ``day_figures``
blob holds those days' figures; both are keyed by the entity's interned id
(``entities.id``: never deleted), with no second index. ``Tier`` says how each tier is
cut into rows.

A blob (schema version 12) holds the row's periods oldest first, each read back exactly
as version 11 (rollup_figures.py) read it. Its head gives the row's number scale, the
states its periods name, each once (a common Home Assistant state as its place in
``WORDS``, a plain decimal as one, others as UTF-8), and, when the first period needs
it, the state before the row. Then per period a byte, its place in the row and its
kind, and what that kind needs:

- one reading whose text is the state (a sensor's single reading): the number;
- one event that left the state as it was: nothing, the period was spent in the state
  the period before ended in;
- one event that changed it: the new state (not when the row names two states: it is
  the other one) and when, in µs into the period (4 bytes in an hour, 5 in a day);
- readings: count, min, max, sum, events, transitions and the state it ended in, each
  only when it is not implied (max is min; sum is min * count, or of two readings
  min + max; events is the count; transitions are the events; the state is the text
  of max or min);
- anything else: version 11's form (``rollup_figures._figures``).

Numbers are decimals ``k / 10**scale`` at the row's scale when that gives back the very
same float; a sum, which float addition leaves a few units in the last place away from
its decimal (21.5 + 0.1 is not 21.6), as that decimal and the distance; else 8 bytes.
A shorter form is taken only when what it reads back is checked to be the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
import json
import math
import sqlite3
import struct
from typing import Final

from .rollup_figures import (
    _DECIMAL,
    _EXACT,
    DAY_US,
    HOUR_US,
    HOURS_PER_DAY,
    Agg,
    _as_decimal,
    _decimal_text,
    _figures,
    _is_one,
    _read_figures,
    _Reader,
    _unzigzag,
    _varint,
    _zigzag,
    unpack_v11,
)

__all__ = ["DAILY", "HOURLY", "HOURS_PER_DAY", "TIERS", "WORDS", "Agg", "Tier", "pack", "unpack"]


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier's rows: ``per_row`` consecutive periods of ``period_us`` each, keyed by
    (entity_ref, period // per_row) in ``row_column``, packed into ``blob_column``."""

    name: str
    table: str
    row_column: str
    blob_column: str
    per_row: int
    period_us: int


HOURLY: Final = Tier("hourly", "rollups_hourly", "day", "hour_figures", HOURS_PER_DAY, HOUR_US)
DAILY: Final = Tier("daily", "rollups_daily", "month", "day_figures", 32, DAY_US)
TIERS: Final = {"hourly": HOURLY, "daily": DAILY}

# States written as their place here. The list is part of the blob's format: a change
# to it needs a new schema version.
WORDS: Final = (
    "on", "off", "unavailable", "unknown", "home", "not_home", "open", "closed",
    "locked", "unlocked", "playing", "paused", "idle", "standby", "heat", "cool",
    "heat_cool", "auto", "dry", "fan_only", "detected", "clear", "above_horizon",
    "below_horizon", "armed_away", "armed_home", "armed_night", "disarmed", "triggered",
    "pending", "opening", "closing", "buffering", "docked", "cleaning", "returning",
    "charging", "discharging", "problem", "jammed",
)  # fmt: skip
_WORD: Final = {word: place for place, word in enumerate(WORDS)}

# A period's kind, in the top 3 bits of its first byte (its place in the row below).
_ONE_SAME: Final = 0
_ONE_CHANGED: Final = 1
_HELD: Final = 2
_CHANGED_ONCE: Final = 3
_READINGS: Final = 4
_OTHER: Final = 5
# What a _READINGS period writes beyond count and min.
_R_MAX: Final = 1
_R_SUM: Final = 2
_R_EVENTS: Final = 4
_R_TRANSITIONS: Final = 8
_R_LAST_MIN: Final = 16
_R_LAST_MAX: Final = 32
_R_LAST: Final = 64

_POW10: Final[tuple[int, ...]] = tuple(10**s for s in range(8))
_BITS: Final = struct.Struct("<q")
_UBITS: Final = struct.Struct("<Q")
_DOUBLE: Final = struct.Struct("<d")
_NEAR_ULPS: Final = 1 << 20
# Bits of the head's first varint, beside the scale (0-7) and the number of states.
_HAS_BEFORE: Final = 8
_TWO: Final = 16


# --- numbers and states ------------------------------------------------------------------


def _ordered(value: float) -> int:
    """The float's place among floats: neighbours differ by one."""
    bits: int = _BITS.unpack(_DOUBLE.pack(value))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _from_ordered(place: int) -> float:
    value: float = _DOUBLE.unpack(_UBITS.pack(place if place >= 0 else -place | 1 << 63))[0]
    return value


@functools.lru_cache(maxsize=8192)
def _scale(value: float) -> int:
    """The digits after the point of the shortest decimal that is the float (0: none)."""
    decimal = _as_decimal(value)
    return 0 if decimal is None else len(decimal[1].partition(".")[2])


def _number(out: bytearray, value: float, scale: int) -> None:
    if (value or math.copysign(1.0, value) > 0) and abs(value) < _EXACT:  # -0.0: 8 bytes
        k = round(value * _POW10[scale])
        if abs(k) < _EXACT:
            base = k / _POW10[scale]
            if base == value:
                _varint(out, _zigzag(k) << 1)
                return
            ulps = _ordered(value) - _ordered(base)
            if base and abs(ulps) < _NEAR_ULPS:
                _varint(out, _zigzag(k) << 2 | 1)
                _varint(out, _zigzag(ulps))
                return
    out.append(3)
    out += _DOUBLE.pack(value)


def _read_number(reader: _Reader, scale: int) -> float:
    tag = reader.varint()
    if not tag & 1:
        return _unzigzag(tag >> 1) / _POW10[scale]
    if tag & 2:
        value: float = _DOUBLE.unpack(reader.take(8))[0]
        return value
    base = _unzigzag(tag >> 2) / _POW10[scale]
    return _from_ordered(_ordered(base) + _unzigzag(reader.varint()))


@functools.lru_cache(maxsize=8192)
def _state(state: str) -> bytes:
    out = bytearray()
    word = _WORD.get(state)
    if word is not None:
        _varint(out, word << 3)
    elif _DECIMAL.fullmatch(state):
        negative = state.startswith("-")
        whole, _, fraction = state.lstrip("-").partition(".")
        k = int(whole + fraction)
        if k == 0 and negative:
            _varint(out, len(fraction) << 3 | 4)
        else:
            _varint(out, (_zigzag(-k if negative else k) << 3 | len(fraction)) << 1 | 1)
    else:
        raw = state.encode()
        _varint(out, len(raw) << 2 | 2)
        out += raw
    return bytes(out)


def _read_state(reader: _Reader) -> str:
    tag = reader.varint()
    if tag & 1:
        tag >>= 1
        return _decimal_text(_unzigzag(tag >> 3), tag & 7, negative_zero=False)
    if tag & 2:
        return reader.take(tag >> 2).decode()
    if tag & 4:
        return _decimal_text(0, tag >> 3, negative_zero=True)
    return WORDS[tag >> 3]


def _text(value: float | None) -> str | None:
    decimal = None if value is None else _as_decimal(value)
    return None if decimal is None else decimal[1]


# --- a period's figures ------------------------------------------------------------------


def as_read(agg: Agg, period_us: int) -> Agg:
    """The figures as they read back: an entity with numbers keeps no time in state,
    time in state is whole µs, max is min and sum is min * count where they are equal."""
    if _is_one(agg):
        value = agg.min
        return Agg(1, value, value, value, 1, 1 if agg.transitions else 0, {}, agg.last_state)
    times: dict[str, float] = {}
    if agg.count > 0 and agg.min is not None and agg.sum is not None:
        high = agg.min if agg.max is None or agg.max == agg.min else agg.max
        total = agg.sum if agg.sum != agg.min * agg.count else agg.min * agg.count
        return Agg(agg.count, agg.min, high, total, agg.events, agg.transitions, times,
                   agg.last_state)  # fmt: skip
    held = [(state, round(seconds * 1e6)) for state, seconds in agg.time_in_state.items()]
    filled = bool(held) and sum(us for _, us in held) == period_us
    for position, (state, us) in enumerate(held):
        if filled and position == len(held) - 1:
            us = period_us - sum(u for _, u in held[:-1])  # noqa: PLW2901
        times[state] = us / 1e6
    return Agg(0, None, None, None, agg.events, agg.transitions, times, agg.last_state)


def _same(a: Agg, b: Agg) -> bool:
    """Every figure equal, floats by their exact text (-0.0 is not 0.0)."""
    numbers = repr((a.min, a.max, a.sum)) == repr((b.min, b.max, b.sum))
    times = [(s, repr(t)) for s, t in a.time_in_state.items()] == [
        (s, repr(t)) for s, t in b.time_in_state.items()
    ]
    return numbers and times and (a.count, a.events, a.transitions, a.last_state) == (
        b.count, b.events, b.transitions, b.last_state)  # fmt: skip


def _one_event(before: str | None, state: str, at_us: int, period_us: int) -> Agg:
    """One event into ``state`` at ``at_us`` of the period, which began in ``before``."""
    agg = Agg(events=1, last_state=state)
    if before is not None and before != state:
        agg.transitions = 1
        if at_us > 0:
            agg.time_in_state[before] = at_us / 1e6
    if before == state:
        agg.time_in_state[state] = period_us / 1e6
    elif at_us < period_us:
        agg.time_in_state[state] = (period_us - at_us) / 1e6
    return agg


def _event_at(agg: Agg, before: str | None, period_us: int) -> int | None:
    """When the one event of a period of states happened, if the period reads as
    ``_one_event`` would give it."""
    state = agg.last_state
    if agg.events != 1 or agg.count or state is None or agg.min is not None:
        return None
    if before is not None and before != state and before in agg.time_in_state:
        at_us = round(agg.time_in_state[before] * 1e6)
    else:
        at_us = period_us - round(agg.time_in_state.get(state, 0.0) * 1e6)
    if not 0 <= at_us <= period_us:
        return None
    return at_us if _same(_one_event(before, state, at_us, period_us), agg) else None


def _before_first(agg: Agg) -> str | None:
    """The state the row's first period began in, as its figures tell it."""
    if agg.count or agg.events != 1 or not agg.time_in_state:
        return None
    first = next(iter(agg.time_in_state))
    return first if agg.transitions or first == agg.last_state else None


class _States:
    """The states a blob names, by their place in its head."""

    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def add(self, state: str) -> int:
        return self.index.setdefault(state, len(self.index))


def _implied_sum(count: int, low: float, high: float) -> float:
    """The sum a period's readings imply: all of them, when min is max; both, when
    there are two (their float sum is the same in either order)."""
    return low + high if count == 2 else low * count


def _identical(a: float, b: float) -> bool:
    return _DOUBLE.pack(a) == _DOUBLE.pack(b)


def _readings(out: bytearray, agg: Agg, states: _States, scale: int) -> None:
    assert agg.min is not None and agg.max is not None and agg.sum is not None
    flags = 0
    flags |= _R_MAX if agg.max != agg.min else 0
    flags |= 0 if _identical(agg.sum, _implied_sum(agg.count, agg.min, agg.max)) else _R_SUM
    flags |= _R_EVENTS if agg.events != agg.count else 0
    flags |= _R_TRANSITIONS if agg.transitions != agg.events else 0
    last = agg.last_state
    if last is not None:
        if last == _text(agg.max):
            flags |= _R_LAST_MAX
        elif last == _text(agg.min):
            flags |= _R_LAST_MIN
        else:
            flags |= _R_LAST
    out.append(flags)
    _varint(out, agg.count)
    _number(out, agg.min, scale)
    if flags & _R_MAX:
        _number(out, agg.max, scale)
    if flags & _R_SUM:
        _number(out, agg.sum, scale)
    if flags & _R_EVENTS:
        _varint(out, agg.events)
    if flags & _R_TRANSITIONS:
        _varint(out, agg.transitions)
    if flags & _R_LAST:
        assert last is not None
        _varint(out, states.add(last))


def _read_readings(reader: _Reader, states: list[str], scale: int) -> Agg:
    flags = reader.byte()
    count = reader.varint()
    low = _read_number(reader, scale)
    high = _read_number(reader, scale) if flags & _R_MAX else low
    total = _read_number(reader, scale) if flags & _R_SUM else _implied_sum(count, low, high)
    events = reader.varint() if flags & _R_EVENTS else count
    transitions = reader.varint() if flags & _R_TRANSITIONS else events
    last = None
    if flags & _R_LAST:
        last = states[reader.varint()]
    elif flags & _R_LAST_MAX:
        last = _text(high)
    elif flags & _R_LAST_MIN:
        last = _text(low)
    return Agg(count, low, high, total, events, transitions, {}, last)


# --- a row's blob ------------------------------------------------------------------------


@dataclass(slots=True)
class _Body:
    """The periods of a row, encoded; the states they name; the state before the row,
    when its first period needs it; whether each change leads to the row's other state."""

    data: bytearray = field(default_factory=bytearray)
    states: _States = field(default_factory=_States)
    first_before: str | None = None
    two: bool = True  # what the row allows, whether or not the new states were written


def _body(tier: Tier, ordered: list[tuple[int, Agg]], scale: int, two: bool) -> _Body:
    """``two``: a change's new state is not written (the row names two states, and a
    change leads from one to the other)."""
    out = _Body()
    body, states = out.data, out.states
    before = _before_first(ordered[0][1]) if ordered else None
    for place, agg in ordered:
        if _is_one(agg):
            assert agg.min is not None
            body.append((_ONE_CHANGED if agg.transitions else _ONE_SAME) << 5 | place)
            _number(body, agg.min, scale)
        elif agg.count and agg.min is not None and agg.sum is not None:
            body.append(_READINGS << 5 | place)
            _readings(body, agg, states, scale)
        elif (at_us := _event_at(agg, before, tier.period_us)) is not None:
            assert agg.last_state is not None
            if not body:  # the first period: the reader needs the state before it
                out.first_before = before
                if before is not None:
                    states.add(before)
            if agg.last_state == before:
                body.append(_HELD << 5 | place)
            else:
                body.append(_CHANGED_ONCE << 5 | place)
                new_state = states.add(agg.last_state)
                if not two:
                    _varint(body, new_state)
                body += at_us.to_bytes(_width(tier), "little")
                # Both ends of each change must be named for the new state to follow.
                out.two = out.two and before is not None and before in states.index
        else:
            body.append(_OTHER << 5 | place)
            for state in (agg.last_state, *agg.time_in_state):
                if state is not None:
                    states.add(state)
            _figures(body, agg, states.index, tier.period_us)
        before = agg.last_state
    out.two = out.two and len(states.index) == 2
    return out


def _width(tier: Tier) -> int:
    """Bytes of a time into one of the tier's periods (µs): 4 for an hour, 5 for a day."""
    return (tier.period_us.bit_length() + 7) // 8


def pack(tier: Tier, periods: dict[int, Agg]) -> bytes:
    """One row's figures, keyed by the period's place in the row (0 to per_row - 1)."""
    ordered = [(place, as_read(agg, tier.period_us)) for place, agg in sorted(periods.items())]
    readings = [v for _, a in ordered if a.count for v in (a.min, a.max) if v is not None]
    scale = max(map(_scale, readings), default=0)
    body = _body(tier, ordered, scale, two=False)
    if body.two:
        body = _body(tier, ordered, scale, two=True)
    head = bytearray()
    flags = scale | (_HAS_BEFORE if body.first_before is not None else 0)
    _varint(head, len(body.states.index) << 5 | (_TWO if body.two else 0) | flags)
    for state in body.states.index:
        head += _state(state)
    if body.first_before is not None:
        _varint(head, body.states.add(body.first_before))
    return bytes(head + body.data)


def unpack(tier: Tier, blob: bytes) -> dict[int, Agg]:
    """A ``pack`` blob's figures by place, oldest first."""
    reader = _Reader(blob)
    head = reader.varint()
    scale = head & 7
    states = [_read_state(reader) for _ in range(head >> 5)]
    before = states[reader.varint()] if head & _HAS_BEFORE else None
    width = _width(tier)
    periods: dict[int, Agg] = {}
    while reader.at < len(blob):
        byte = reader.byte()
        kind, place = byte >> 5, byte & 31
        if kind <= _ONE_CHANGED:
            value = _read_number(reader, scale)
            agg = Agg(1, value, value, value, 1, kind, {}, _text(value))
        elif kind == _READINGS:
            agg = _read_readings(reader, states, scale)
        elif kind == _HELD:
            assert before is not None
            agg = _one_event(before, before, 0, tier.period_us)
        elif kind == _CHANGED_ONCE:
            if head & _TWO:
                state = states[1] if before == states[0] else states[0]
            else:
                state = states[reader.varint()]
            at_us = int.from_bytes(reader.take(width), "little")
            agg = _one_event(before, state, at_us, tier.period_us)
        else:
            agg = _read_figures(reader, states, tier.period_us)
        periods[place] = agg
        before = agg.last_state
    return periods


def pack_hours(hours: dict[int, Agg]) -> bytes:
    """A day's hourly figures, keyed by the hour of the day (0-23)."""
    return pack(HOURLY, hours)


def unpack_hours(blob: bytes) -> dict[int, Agg]:
    return unpack(HOURLY, blob)


def final_state(blob: bytes, tier: Tier = HOURLY) -> str | None:
    """The state the entity was in at the end of the last period of a ``pack`` blob (a
    period may take its state from the one before: the row is read through)."""
    periods = unpack(tier, blob)
    return periods[max(periods)].last_state if periods else None


def first_place(blob: bytes) -> int:
    """The first (oldest) period's place in its row, in a ``pack`` blob."""
    reader = _Reader(blob)
    head = reader.varint()
    for _ in range(head >> 5):
        _read_state(reader)
    if head & _HAS_BEFORE:
        reader.varint()
    return reader.byte() & 31


def first_hour(blob: bytes) -> int:
    """The first hour of the day in a ``pack_hours`` blob."""
    return first_place(blob)


def convert_v11(tier: Tier, blob: bytes) -> bytes:
    """A row of schema version 11, in this version's form."""
    return pack(tier, unpack_v11(tier.period_us, blob))


# --- the tables ------------------------------------------------------------------------


def read_row(conn: sqlite3.Connection, tier: Tier, ref: int, row: int) -> dict[int, Agg]:
    """An entity's figures in one row of a tier, by place in the row."""
    found = conn.execute(
        f"SELECT {tier.blob_column} FROM {tier.table}"
        f" WHERE entity_ref = ? AND {tier.row_column} = ?",
        (ref, row),
    ).fetchone()
    return {} if found is None else unpack(tier, found[0])


def read_rows(
    conn: sqlite3.Connection, tier: Tier, refs: list[int], row: int
) -> dict[int, dict[int, Agg]]:
    """The same row of several entities (those that have it), by entity ref."""
    found = conn.execute(
        f"SELECT entity_ref, {tier.blob_column} FROM {tier.table} WHERE {tier.row_column} = ?"
        " AND entity_ref IN (SELECT value FROM json_each(?))",
        (row, json.dumps(refs)),
    )
    return {ref: unpack(tier, blob) for ref, blob in found}


def write_rows(
    conn: sqlite3.Connection, tier: Tier, rows: list[tuple[int, int, dict[int, Agg]]]
) -> None:
    """(entity ref, row, figures by place) rows, written, replaced, or (no figures)
    deleted."""
    conn.executemany(
        f"INSERT OR REPLACE INTO {tier.table} (entity_ref, {tier.row_column}, n,"
        f" {tier.blob_column}) VALUES (?, ?, ?, ?)",
        [(ref, row, len(periods), pack(tier, periods)) for ref, row, periods in rows if periods],
    )
    conn.executemany(
        f"DELETE FROM {tier.table} WHERE entity_ref = ? AND {tier.row_column} = ?",
        [(ref, row) for ref, row, periods in rows if not periods],
    )


def read_hours(conn: sqlite3.Connection, ref: int, day: int) -> dict[int, Agg]:
    """The day's hourly figures of an entity, by hour of the day."""
    return read_row(conn, HOURLY, ref, day)


def write_hours(conn: sqlite3.Connection, ref: int, day: int, hours: dict[int, Agg]) -> None:
    write_rows(conn, HOURLY, [(ref, day, hours)])


def read_range(
    conn: sqlite3.Connection, tier: Tier, ref: int, first: int, end: int
) -> list[tuple[int, Agg]]:
    """(epoch hour or day, figures) of the entity in [first, end), oldest first."""
    found = []
    for row, blob in conn.execute(
        f"SELECT {tier.row_column}, {tier.blob_column} FROM {tier.table}"
        f" WHERE entity_ref = ? AND {tier.row_column} >= ? AND {tier.row_column} < ?"
        f" ORDER BY {tier.row_column}",
        (ref, first // tier.per_row, -(-end // tier.per_row)),
    ):
        for place, agg in sorted(unpack(tier, blob).items()):
            period = row * tier.per_row + place
            if first <= period < end:
                found.append((period, agg))
    return found


def read_hour_range(
    conn: sqlite3.Connection, ref: int, first_hour: int, end_hour: int
) -> list[tuple[int, Agg]]:
    """(epoch hour, figures) of the entity in [first_hour, end_hour), oldest first."""
    return read_range(conn, HOURLY, ref, first_hour, end_hour)


def read_period(conn: sqlite3.Connection, tier: Tier, ref: int, period: int) -> Agg | None:
    """The figures of one epoch hour or day of an entity."""
    return read_row(conn, tier, ref, period // tier.per_row).get(period % tier.per_row)


def read_day(conn: sqlite3.Connection, ref: int, day: int) -> Agg | None:
    return read_period(conn, DAILY, ref, day)


def write_days(conn: sqlite3.Connection, rows: list[tuple[int, int, Agg]]) -> None:
    """(entity ref, day, figures) rows, written or replaced in their months' rows."""
    months: dict[tuple[int, int], dict[int, Agg]] = {}
    for ref, day, agg in rows:
        key = (ref, day // DAILY.per_row)
        if key not in months:
            months[key] = read_row(conn, DAILY, *key)
        months[key][day % DAILY.per_row] = agg
    write_rows(conn, DAILY, [(ref, month, days) for (ref, month), days in months.items()])


def entity_refs(conn: sqlite3.Connection, entity_ids: list[str]) -> dict[str, int]:
    """The interned ids of entities (those that have one)."""
    found: dict[str, int] = {}
    for first in range(0, len(entity_ids), 500):
        chunk = entity_ids[first : first + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            conn.execute(f"SELECT entity_id, id FROM entities WHERE entity_id IN ({marks})", chunk)
        )
    return found


def log_rollup_changes(conn: sqlite3.Connection, period: str, rows: list[tuple[str, int]]) -> None:
    """Log rollups just written, as (entity_id, epoch hour or day), in the mirror's change
    log (store/mirror_outbox.py) while a target wants rollups. Packed several to a row,
    a period's change is known only to whoever wrote it, so no trigger can log it."""
    if rows and conn.execute("SELECT 1 FROM mirror_targets WHERE rollups = 1 LIMIT 1").fetchone():
        conn.executemany(
            "INSERT INTO mirror_rollup_changes (period, entity_id, start) VALUES (?, ?, ?)",
            [(period, entity_id, start) for entity_id, start in rows],
        )


def tier_summary(conn: sqlite3.Connection, tier: str) -> tuple[int, int | None, int | None]:
    """(rollups, oldest, newest) of a tier; oldest and newest in its unit (hour or day)."""
    packing = TIERS[tier]
    table, row, blob = packing.table, packing.row_column, packing.blob_column
    n, lo, hi = conn.execute(f"SELECT COALESCE(SUM(n), 0), MIN({row}), MAX({row}) FROM {table}"
                             ).fetchone()  # fmt: skip
    if lo is None:
        return 0, None, None
    oldest = min(
        lo * packing.per_row + first_place(b)
        for (b,) in conn.execute(f"SELECT {blob} FROM {table} WHERE {row} = ?", (lo,))
    )
    newest = max(
        hi * packing.per_row + max(unpack(packing, b))
        for (b,) in conn.execute(f"SELECT {blob} FROM {table} WHERE {row} = ?", (hi,))
    )
    return int(n), oldest, newest
