"""Rollup figures: the ``Agg`` of one entity over one period, and the blob encodings of
schema versions 7 and 11, which rollup_migrations.py reads to convert them (and whose
pieces the current encoding, rollup_rows.py, reuses for the periods it has no shorter
form for).

Inside a version 11 blob, numbers and states are written compactly and read back exactly:

- a number is a decimal ``k / 10**s`` when that gives back the very same float (sensor
  values mostly are: 21.5, 1200), else its 8 bytes;
- the states a blob names are listed once at its start, and figures refer to them by
  position; a state that is a plain decimal ("21.50") is kept as one, others as UTF-8;
- time in each state is kept in whole microseconds (the events' own unit); when the
  times fill the whole period (the state was known from its start), the last one is
  the rest of the period and is not stored;
- a period of a single event whose state is the text of its number (one reading of a
  sensor, "21.5"), is just that number: count, min, max, sum, events and the state
  follow from it;
- an entity with numeric states shows count, min, max, mean and sum, never its time in
  each state (the history API and the mirror both do so), so that is not kept for it.

The newest period comes first. Varints are LEB128 (unsigned) with zigzag for signed
values. Schema version 7 wrote the same figures without the two shortcuts, oldest period
first, and a daily row per day (``*_v7_*``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
import functools
import math
import re
import struct
from typing import Final

HOURS_PER_DAY: Final = 24
HOUR_US: Final = 3_600_000_000
DAY_US: Final = 86_400_000_000
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
_REST: Final = 32  # ... the last state's time not: it is the rest of the period
_ONE: Final = 64  # one event, a number whose text is the state: only the number follows
_CHANGED: Final = 128  # (with _ONE) the event changed the state: one transition


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

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1]

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def number(self) -> float:
        tag = self.varint()
        if tag & 1:
            value: float = _DOUBLE.unpack(self.take(8))[0]
            return value
        return _from_tag(tag)[0]

    def number_and_text(self) -> tuple[float, str]:
        """A number written as a decimal, and that decimal's text."""
        return _from_tag(self.varint())

    def state(self) -> str:
        tag = self.varint()
        if tag & 1:
            tag >>= 1
            return _decimal_text(_unzigzag(tag >> 3), tag & 7, negative_zero=False)
        if tag & 2:  # a negative decimal whose digits are all zero ("-0.0")
            tag >>= 2
            return _decimal_text(0, tag, negative_zero=True)
        return self.take(tag >> 2).decode()


def _as_decimal(value: float) -> tuple[bytes, str] | None:
    """A number's bytes as a decimal ``k / 10**s`` that gives back the very same float,
    the smallest s, and the decimal's text; None when no such decimal is short enough."""
    if value == 0:  # 0.0 and -0.0 are one key to a cache
        return None if math.copysign(1.0, value) < 0 else (b"\x00", "0")
    return _nonzero_decimal(value)


@functools.lru_cache(maxsize=8192)  # sensors repeat their values
def _nonzero_decimal(value: float) -> tuple[bytes, str] | None:
    if abs(value) < _EXACT:
        for scale in range(_MAX_SCALE + 1):
            k = round(value * 10**scale)
            if abs(k) < _EXACT and (float(k) if scale == 0 else k / 10**scale) == value:
                out = bytearray()
                _varint(out, ((_zigzag(k) << 3 | scale) << 1))
                return bytes(out), _decimal_text(k, scale, negative_zero=False)
    return None


@functools.lru_cache(maxsize=8192)
def _from_tag(tag: int) -> tuple[float, str]:
    """The number (and its text) of a decimal's tag."""
    tag >>= 1
    k, scale = _unzigzag(tag >> 3), tag & 7
    value = float(k) if scale == 0 else k / 10**scale
    return value, _decimal_text(k, scale, negative_zero=False)


def _number(out: bytearray, value: float) -> None:
    decimal = _as_decimal(value)
    if decimal is not None:
        out += decimal[0]
        return
    out.append(1)
    out += _DOUBLE.pack(value)


def _decimal_text(k: int, scale: int, *, negative_zero: bool) -> str:
    digits = str(abs(k)).rjust(scale + 1, "0")
    text = digits if scale == 0 else f"{digits[:-scale]}.{digits[-scale:]}"
    return "-" + text if k < 0 or negative_zero else text


@functools.lru_cache(maxsize=8192)  # a blob's head names the same few states again
def _state(state: str) -> bytes:
    out = bytearray()
    if _DECIMAL.fullmatch(state):
        whole, _, fraction = state.lstrip("-").partition(".")
        k = int(whole + fraction)
        if k == 0 and state.startswith("-"):
            _varint(out, (len(fraction) << 2) | 2)
            return bytes(out)
        _varint(out, ((_zigzag(-k if state.startswith("-") else k) << 3 | len(fraction)) << 1) | 1)
        return bytes(out)
    raw = state.encode()
    _varint(out, len(raw) << 2)
    return bytes(out + raw)


def _is_one(agg: Agg) -> bool:
    """One event, one number, and the state it left is that number's decimal text."""
    if agg.events != 1 or agg.count != 1 or agg.min is None or agg.last_state is None:
        return False
    if agg.max != agg.min or agg.sum != agg.min or agg.transitions > 1:
        return False
    decimal = _as_decimal(agg.min)
    return decimal is not None and decimal[1] == agg.last_state


def _figures(
    out: bytearray, agg: Agg, index: dict[str, int], period_us: int | None, *, one: bool = False
) -> None:
    """One period's figures (``one``: it is a single reading, ``_is_one``); ``period_us``
    None: as schema version 7 wrote them."""
    if one:
        assert agg.min is not None
        out.append(_ONE | (_CHANGED if agg.transitions else 0))
        _number(out, agg.min)
        return
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
    times = [] if numbers else [
        (index[state], round(seconds * 1e6)) for state, seconds in agg.time_in_state.items()
    ]  # fmt: skip
    if times:
        flags |= _TIME
        if period_us is not None and sum(us for _, us in times) == period_us:
            flags |= _REST
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
        _varint(out, len(times))
        for position, (state, us) in enumerate(times):
            _varint(out, state)
            if not (flags & _REST and position == len(times) - 1):
                _varint(out, us)


def _read_figures(reader: _Reader, states: list[str], period_us: int) -> Agg:
    flags = reader.byte()
    agg = Agg()
    if flags & _ONE:
        value, text = reader.number_and_text()
        changed = 1 if flags & _CHANGED else 0
        return Agg(1, value, value, value, 1, changed, {}, text)
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
        n, held = reader.varint(), 0
        for position in range(n):
            state = states[reader.varint()]
            if flags & _REST and position == n - 1:
                agg.time_in_state[state] = (period_us - held) / 1e6
            else:
                us = reader.varint()
                held += us
                agg.time_in_state[state] = us / 1e6
    return agg


def _states_of(aggs: Iterable[Agg]) -> dict[str, int]:
    index: dict[str, int] = {}
    for agg in aggs:
        if agg.last_state is not None:
            index.setdefault(agg.last_state, len(index))
        if not agg.count:
            for state in agg.time_in_state:
                index.setdefault(state, len(index))
    return index


def _head(aggs: Iterable[Agg]) -> tuple[bytearray, dict[str, int]]:
    index = _states_of(aggs)
    out = bytearray()
    _varint(out, len(index))
    for state in index:
        out += _state(state)
    return out, index


def _read_head(reader: _Reader) -> list[str]:
    return [reader.state() for _ in range(reader.varint())]


def pack_v11(period_us: int, periods: dict[int, Agg]) -> bytes:
    """A version 11 row: figures keyed by the period's place in the row, newest first."""
    ordered = sorted(periods.items(), reverse=True)
    ones = [_is_one(agg) for _, agg in ordered]
    out, index = _head(agg for (_, agg), one in zip(ordered, ones, strict=True) if not one)
    _varint(out, len(ordered))
    for (place, agg), one in zip(ordered, ones, strict=True):
        out.append(place)
        _figures(out, agg, index, period_us, one=one)
    return bytes(out)


def unpack_v11(period_us: int, blob: bytes) -> dict[int, Agg]:
    """A ``pack_v11`` blob's figures by place, oldest first."""
    reader = _Reader(blob)
    states = _read_head(reader)
    newest_first = [
        (reader.byte(), _read_figures(reader, states, period_us)) for _ in range(reader.varint())
    ]
    return dict(reversed(newest_first))


# --- schema version 7's blobs ----------------------------------------------------------


def pack_v7_hours(hours: dict[int, Agg]) -> bytes:
    ordered = sorted(hours.items())
    final = ordered[-1][1].last_state if ordered else None
    out, index = _head([Agg(last_state=final), *(agg for _, agg in ordered)])
    _varint(out, len(ordered) << 1 | (final is not None))
    for hour, agg in ordered:
        out.append(hour)
        _figures(out, agg, index, None)
    return bytes(out)


def unpack_v7_hours(blob: bytes) -> dict[int, Agg]:
    reader = _Reader(blob)
    states = _read_head(reader)
    hours = {}
    for _ in range(reader.varint() >> 1):
        hour = reader.byte()
        hours[hour] = _read_figures(reader, states, HOUR_US)
    return hours


def pack_v7_day(agg: Agg) -> bytes:
    out, index = _head([agg])
    _figures(out, agg, index, None)
    return bytes(out)


def unpack_v7_day(blob: bytes) -> Agg:
    reader = _Reader(blob)
    return _read_figures(reader, _read_head(reader), DAY_US)
