"""Rollup rows, packed: one row per entity and day in each tier.

A row per entity and hour cost more than the raw event it summed up (about one event per
entity-hour is common), so retention made the file grow. Now ``rollups_hourly`` keeps one
row per (entity, day) whose ``hours`` blob holds that day's hourly figures, and
``rollups_daily`` one row per (entity, day) with the day's figures; both are keyed by the
entity's interned id (``entities.id``: never deleted), with no second index.

Inside a blob, numbers and states are written compactly and read back exactly:

- a number is a decimal ``k / 10**s`` when that gives back the very same float (sensor
  values mostly are: 21.5, 1200), else its 8 bytes;
- the states a blob names are listed once at its start, and figures refer to them by
  position; a state that is a plain decimal ("21.50") is kept as one, others as UTF-8;
- time in each state is kept in whole microseconds (the events' own unit);
- an entity with numeric states shows count, min, max, mean and sum, never its time in
  each state (the history API and the mirror both do so), so that is not kept for it.

Varints are LEB128 (unsigned) with zigzag for signed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import math
import re
import sqlite3
import struct
from typing import Any, Final

HOURS_PER_DAY: Final = 24
_DOUBLE: Final = struct.Struct("<d")
_DECIMAL: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]{1,7})?")
_MAX_SCALE: Final = 7
_EXACT: Final = 2**53  # decimals beyond this would take more room than 8 bytes

# Flags of one set of figures.
_NUMBERS: Final = 1  # count, min (and max, sum when they are not implied) follow
_MAX: Final = 2  # max differs from min
_SUM: Final = 4  # sum is not min * count
_LAST: Final = 8  # the period ended in a known state
_TIME: Final = 16  # time in each state follows


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


# --- the encoding ----------------------------------------------------------------------


def _varint(out: bytearray, n: int) -> None:
    if n < 0x80:
        out.append(n)
        return
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


class _Reader:
    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def varint(self) -> int:
        data = self.data
        byte = data[self.at]
        if byte < 0x80:
            self.at += 1
            return byte
        shift = result = 0
        while True:
            byte = data[self.at]
            self.at += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def number(self) -> float:
        tag = self.varint()
        if tag & 1:
            value: float = _DOUBLE.unpack(self.take(8))[0]
            return value
        tag >>= 1
        k, scale = _unzigzag(tag >> 3), tag & 7
        return float(k) if scale == 0 else k / 10**scale

    def state(self) -> str:
        tag = self.varint()
        if tag & 1:
            tag >>= 1
            return _decimal_text(_unzigzag(tag >> 3), tag & 7, negative_zero=False)
        if tag & 2:  # a negative decimal whose digits are all zero ("-0.0")
            tag >>= 2
            return _decimal_text(0, tag, negative_zero=True)
        return self.take(tag >> 2).decode()


def _number(out: bytearray, value: float) -> None:
    if abs(value) < _EXACT and not (value == 0 and math.copysign(1.0, value) < 0):
        for scale in range(_MAX_SCALE + 1):
            k = round(value * 10**scale)
            if abs(k) < _EXACT and (float(k) if scale == 0 else k / 10**scale) == value:
                _varint(out, ((_zigzag(k) << 3 | scale) << 1))
                return
    out.append(1)
    out += _DOUBLE.pack(value)


def _decimal_text(k: int, scale: int, *, negative_zero: bool) -> str:
    digits = str(abs(k)).rjust(scale + 1, "0")
    text = digits if scale == 0 else f"{digits[:-scale]}.{digits[-scale:]}"
    return "-" + text if k < 0 or negative_zero else text


def _state(out: bytearray, state: str) -> None:
    if _DECIMAL.fullmatch(state):
        whole, _, fraction = state.lstrip("-").partition(".")
        k = int(whole + fraction)
        if k == 0 and state.startswith("-"):
            _varint(out, (len(fraction) << 2) | 2)
            return
        _varint(out, ((_zigzag(-k if state.startswith("-") else k) << 3 | len(fraction)) << 1) | 1)
        return
    raw = state.encode()
    _varint(out, len(raw) << 2)
    out += raw


def _figures(out: bytearray, agg: Agg, index: dict[str, int]) -> None:
    flags = 0
    numbers = agg.count > 0 and agg.min is not None and agg.sum is not None
    if numbers:
        flags |= _NUMBERS
        if agg.max != agg.min:
            flags |= _MAX
        if agg.sum != agg.min * agg.count:  # type: ignore[operator]
            flags |= _SUM
    if agg.last_state is not None:
        flags |= _LAST
    if not numbers and agg.time_in_state:
        flags |= _TIME
    out.append(flags)
    if numbers:
        assert agg.min is not None and agg.sum is not None
        _varint(out, agg.count)
        _number(out, agg.min)
        if flags & _MAX:
            _number(out, agg.max if agg.max is not None else agg.min)
        if flags & _SUM:
            _number(out, agg.sum)
    _varint(out, agg.events)
    _varint(out, agg.transitions)
    if agg.last_state is not None:
        _varint(out, index[agg.last_state])
    if flags & _TIME:
        _varint(out, len(agg.time_in_state))
        for state, seconds in agg.time_in_state.items():
            _varint(out, index[state])
            _varint(out, round(seconds * 1e6))


def _read_figures(reader: _Reader, states: list[str]) -> Agg:
    flags = reader.data[reader.at]
    reader.at += 1
    agg = Agg()
    if flags & _NUMBERS:
        agg.count = reader.varint()
        agg.min = reader.number()
        agg.max = reader.number() if flags & _MAX else agg.min
        agg.sum = reader.number() if flags & _SUM else agg.min * agg.count
    agg.events = reader.varint()
    agg.transitions = reader.varint()
    if flags & _LAST:
        agg.last_state = states[reader.varint()]
    if flags & _TIME:
        for _ in range(reader.varint()):
            state = states[reader.varint()]
            agg.time_in_state[state] = reader.varint() / 1e6
    return agg


def _states_of(aggs: list[Agg], first: str | None = None) -> dict[str, int]:
    index: dict[str, int] = {} if first is None else {first: 0}
    for agg in aggs:
        if agg.last_state is not None:
            index.setdefault(agg.last_state, len(index))
        if not agg.count:
            for state in agg.time_in_state:
                index.setdefault(state, len(index))
    return index


def _head(aggs: list[Agg], first: str | None = None) -> tuple[bytearray, dict[str, int]]:
    index = _states_of(aggs, first)
    out = bytearray()
    _varint(out, len(index))
    for state in index:
        _state(out, state)
    return out, index


def _read_head(reader: _Reader) -> list[str]:
    return [reader.state() for _ in range(reader.varint())]


def pack_hours(hours: dict[int, Agg]) -> bytes:
    """A day's hourly figures, keyed by the hour of the day (0-23).

    The state the day ended in comes first in the blob's states (and a bit beside the
    number of hours says whether there is one), so ``final_state`` need not read the
    figures: it is what the next day starts from.
    """
    ordered = sorted(hours.items())
    final = ordered[-1][1].last_state if ordered else None
    out, index = _head([agg for _, agg in ordered], final)
    _varint(out, len(ordered) << 1 | (final is not None))
    for hour, agg in ordered:
        out.append(hour)
        _figures(out, agg, index)
    return bytes(out)


def unpack_hours(blob: bytes) -> dict[int, Agg]:
    reader = _Reader(blob)
    states = _read_head(reader)
    hours = {}
    for _ in range(reader.varint() >> 1):
        hour = reader.data[reader.at]
        reader.at += 1
        hours[hour] = _read_figures(reader, states)
    return hours


def final_state(blob: bytes) -> str | None:
    """The state the entity was in at the end of its last hour in a ``pack_hours`` blob."""
    reader = _Reader(blob)
    states = _read_head(reader)
    return states[0] if reader.varint() & 1 else None


def first_hour(blob: bytes) -> int:
    """The first hour of the day in a ``pack_hours`` blob."""
    reader = _Reader(blob)
    _read_head(reader)
    reader.varint()
    return reader.data[reader.at]


def pack_day(agg: Agg) -> bytes:
    out, index = _head([agg])
    _figures(out, agg, index)
    return bytes(out)


def unpack_day(blob: bytes) -> Agg:
    reader = _Reader(blob)
    return _read_figures(reader, _read_head(reader))


# --- the tables ------------------------------------------------------------------------

SCHEMA: Final = (
    """CREATE TABLE rollups_hourly (
        entity_ref INTEGER NOT NULL,      -- entities.id
        day INTEGER NOT NULL,             -- epoch day
        n INTEGER NOT NULL,               -- hours in the blob
        hours BLOB NOT NULL,              -- pack_hours()
        PRIMARY KEY (entity_ref, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE rollups_daily (
        entity_ref INTEGER NOT NULL,
        day INTEGER NOT NULL,
        figures BLOB NOT NULL,            -- pack_day()
        PRIMARY KEY (entity_ref, day)
    ) WITHOUT ROWID""",
)


def read_hours(conn: sqlite3.Connection, ref: int, day: int) -> dict[int, Agg]:
    """The day's hourly figures of an entity, by hour of the day."""
    row = conn.execute(
        "SELECT hours FROM rollups_hourly WHERE entity_ref = ? AND day = ?", (ref, day)
    ).fetchone()
    return {} if row is None else unpack_hours(row[0])


def write_hours(conn: sqlite3.Connection, ref: int, day: int, hours: dict[int, Agg]) -> None:
    if not hours:
        conn.execute("DELETE FROM rollups_hourly WHERE entity_ref = ? AND day = ?", (ref, day))
        return
    conn.execute(
        "INSERT OR REPLACE INTO rollups_hourly (entity_ref, day, n, hours) VALUES (?, ?, ?, ?)",
        (ref, day, len(hours), pack_hours(hours)),
    )


def read_hour_range(
    conn: sqlite3.Connection, ref: int, first_hour: int, end_hour: int
) -> list[tuple[int, Agg]]:
    """(epoch hour, figures) of the entity in [first_hour, end_hour), oldest first."""
    found = []
    for day, blob in conn.execute(
        "SELECT day, hours FROM rollups_hourly WHERE entity_ref = ? AND day >= ? AND day < ?"
        " ORDER BY day",
        (ref, first_hour // HOURS_PER_DAY, -(-end_hour // HOURS_PER_DAY)),
    ):
        for hour, agg in unpack_hours(blob).items():
            epoch_hour = day * HOURS_PER_DAY + hour
            if first_hour <= epoch_hour < end_hour:
                found.append((epoch_hour, agg))
    return found


def read_day(conn: sqlite3.Connection, ref: int, day: int) -> Agg | None:
    row = conn.execute(
        "SELECT figures FROM rollups_daily WHERE entity_ref = ? AND day = ?", (ref, day)
    ).fetchone()
    return None if row is None else unpack_day(row[0])


def write_days(conn: sqlite3.Connection, rows: list[tuple[int, int, Agg]]) -> None:
    """(entity ref, day, figures) rows, written or replaced."""
    conn.executemany(
        "INSERT OR REPLACE INTO rollups_daily (entity_ref, day, figures) VALUES (?, ?, ?)",
        [(ref, day, pack_day(agg)) for ref, day, agg in rows],
    )


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
    log (store/mirror_outbox.py) while a target wants rollups. Packed a day per row, an
    hour's change is known only to whoever wrote it, so no trigger can log it."""
    if rows and conn.execute("SELECT 1 FROM mirror_targets WHERE rollups = 1 LIMIT 1").fetchone():
        conn.executemany(
            "INSERT INTO mirror_rollup_changes (period, entity_id, start) VALUES (?, ?, ?)",
            [(period, entity_id, start) for entity_id, start in rows],
        )


def tier_summary(conn: sqlite3.Connection, tier: str) -> tuple[int, int | None, int | None]:
    """(rollups, oldest, newest) of a tier; oldest and newest in its unit (hour or day)."""
    if tier == "daily":
        n, lo, hi = conn.execute(
            "SELECT COUNT(*), MIN(day), MAX(day) FROM rollups_daily"
        ).fetchone()
        return int(n), lo, hi
    n, lo, hi = conn.execute(
        "SELECT COALESCE(SUM(n), 0), MIN(day), MAX(day) FROM rollups_hourly"
    ).fetchone()
    if lo is None:
        return 0, None, None
    oldest = min(
        lo * HOURS_PER_DAY + first_hour(b)
        for (b,) in conn.execute("SELECT hours FROM rollups_hourly WHERE day = ?", (lo,))
    )
    newest = max(
        hi * HOURS_PER_DAY + max(unpack_hours(b))
        for (b,) in conn.execute("SELECT hours FROM rollups_hourly WHERE day = ?", (hi,))
    )
    return int(n), oldest, newest


# --- schema version 7 ------------------------------------------------------------------

_UNPACKED: Final = (
    "count, min, max, sum, events, transitions, time_in_state, last_state"  # v2..v5 columns
)


def _unpacked(row: tuple[Any, ...]) -> Agg:
    count, low, high, total, events, transitions, time_in_state, last = row
    return Agg(count, low, high, total, events, transitions, json.loads(time_in_state), last)


def migrate_packed_rollups(conn: sqlite3.Connection) -> None:
    """Schema version 7: rollups packed a day per row, keyed by the entity's id.

    Converts the stored rollups in place. The old tables' triggers (the mirror's change
    log) go with them: the retention job now logs the rollups it writes itself.
    """
    for table in ("rollups_hourly", "rollups_daily"):
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_unpacked")
    for statement in SCHEMA:
        conn.execute(statement)
    refs: dict[str, int] = dict(conn.execute("SELECT entity_id, id FROM entities").fetchall())

    def ref_of(entity_id: str) -> int:
        if entity_id not in refs:
            refs[entity_id] = int(
                conn.execute(
                    "INSERT INTO entities (entity_id, domain) VALUES (?, ?) RETURNING id",
                    (entity_id, entity_id.partition(".")[0]),
                ).fetchone()[0]
            )
        return refs[entity_id]

    key: tuple[int, int] | None = None
    hours: dict[int, Agg] = {}
    for entity_id, hour, *figures in conn.execute(
        f"SELECT entity_id, hour, {_UNPACKED} FROM rollups_hourly_unpacked ORDER BY entity_id, hour"
    ).fetchall():
        here = (ref_of(entity_id), hour // HOURS_PER_DAY)
        if here != key and key is not None:
            write_hours(conn, *key, hours)
            hours = {}
        key = here
        hours[hour % HOURS_PER_DAY] = _unpacked(tuple(figures))
    if key is not None:
        write_hours(conn, *key, hours)
    days = conn.execute(f"SELECT entity_id, day, {_UNPACKED} FROM rollups_daily_unpacked")
    write_days(conn, [(ref_of(r[0]), r[1], _unpacked(r[2:])) for r in days.fetchall()])
    for table in ("rollups_hourly_unpacked", "rollups_daily_unpacked"):
        conn.execute(f"DROP TABLE {table}")
