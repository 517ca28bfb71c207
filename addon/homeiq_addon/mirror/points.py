"""Stored events and rollups as InfluxDB line protocol, in a schema no write can refuse.

What a mirror target receives (InfluxDB 2/3 and Cloud keep it as written; VictoriaMetrics
turns every field into a series named ``{measurement}_{field}`` with the tags as labels):

``homeiq`` — one point per event, at its ``time_fired`` (microseconds).
  tags   ``entity_id domain area floor device_class unit event_type cause`` (those the
         event has; a tag is never empty)
  fields ``events`` = 1 (float: sum it to count events) · ``value`` (float, the numeric
         state) · ``state`` (string) · ``prev_state_seconds`` (float) · ``cause_name``
         (string) · one field per attribute, and for events other than state changes
         per key of their ``data``: ``attr_<key>_<type>`` / ``data_<key>_<type>``.

``homeiq_states`` — the non-numeric states as 0/1 series, for engines that keep numbers
  only. Tags ``entity_id domain area floor device_class state``, field ``active``: 1 when
  the entity enters a state (and on every later event in it), 0 on the old state's series
  at the moment it leaves it. The value at any time is the last sample's. Numeric states
  get no such series (``value`` has them), nor does an empty state.

``homeiq_hourly`` / ``homeiq_daily`` — one point per entity and period, at its start.
  tags ``entity_id domain``; fields (floats) ``events transitions`` always, ``count min
  max mean sum`` when the entity had numeric states.
``homeiq_hourly_states`` / ``homeiq_daily_states`` — time in each state, for entities
  without numeric states: tags ``entity_id domain state``, field ``seconds``.

Field types never conflict, whatever the data: a field's type is part of its name and
never changes. ``value``, ``events``, ``active``, ``seconds`` and the rollup figures are
always floats (an integer is written as a float); ``state`` and ``cause_name`` are always
strings; an attribute's type is its suffix: ``_num`` (float; integers too), ``_bool``,
``_str``, ``_json`` (lists and objects as compact JSON). An attribute that is a number in
one event and a string in the next fills two fields, each with one type. Attribute keys
keep ``[A-Za-z0-9_]`` and turn any other character into ``_`` (a field name must also be
a series name a PromQL query can write); keys that collide after that share a field,
which still has one type.

A measurement's points carry different tag keys (an empty tag is left out), which every
engine takes. InfluxDB 3's documentation of its v1/v2 write APIs says "Tags in a table
(measurement) are immutable"; its source says otherwise since v3.0.0-0.beta.1. Between
influxdata/influxdb d2fbd65 ("Deny extra tags on write APIs", #25596, December 2024)
and 329ef2f ("allow new tags in schema again", #26108, March 2025, "we made tags
nullable") a point with a tag the table had not seen was refused ("Detected a new tag
'…' in write. The tag set is immutable on first write to the table."); every tagged
release contains both. At d7834110 (3.10, June 2026),
influxdb3_write/src/write_buffer/validator.rs, ``validate_and_qualify_v1_line``, which
all three write APIs use, calls ``column_or_create(table, tag_key, Tag)`` for each tag
of each line: a new tag becomes a new column, and a tag a point lacks is null. Its line
protocol reference agrees: "Tag values cannot be empty; instead, omit the tag from the
tag set". ``column_or_create`` refuses a name the table has as another kind of column,
so no tag shares a name with a field of its measurement (attributes and data are
prefixed; tests/mirror/test_points.py checks it).

A point is identified by its measurement, tag set and timestamp: a retried write
overwrites (InfluxDB) or writes an identical sample that deduplication removes
(VictoriaMetrics with ``-dedup.minScrapeInterval=1ms``, see tests/mirror/engines.py).

Escaping follows the line protocol as influxdb-client writes it: in tag values a
backslash, comma, equals sign and space are escaped with a backslash; newline, carriage
return and tab become the two characters ``\\n``, ``\\r``, ``\\t`` (neither engine takes
them raw). In string fields a backslash and a double quote are escaped, and newline and
carriage return become ``\\n``/``\\r`` as text: VictoriaMetrics splits lines at a raw
newline even inside quotes and silently drops both halves. A string field longer than
InfluxDB's 64 KiB is left out, and so are all attribute and data strings of an event
whose line would pass VictoriaMetrics' 256 KiB line limit (the state stays).
``strings=False`` leaves every string field out: VictoriaMetrics stores a string field
as 0 (or as the number the string spells), so there they are only noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import math
import re
from typing import Any, Final, Literal

import orjson

from ..contract import STATE_EVENT_TYPES, parse_time_us

EVENT_MEASUREMENT: Final = "homeiq"
STATE_MEASUREMENT: Final = "homeiq_states"
ROLLUP_MEASUREMENTS: Final = {
    "hour": ("homeiq_hourly", "homeiq_hourly_states"),
    "day": ("homeiq_daily", "homeiq_daily_states"),
}
# InfluxDB refuses a longer string field; VictoriaMetrics skips a longer line (its
# -influx.maxLineSize default), silently.
MAX_STRING_BYTES: Final = 64 * 1024 - 1
MAX_LINE_BYTES: Final = 256 * 1024 - 1024

_TAG_ESCAPE: Final = str.maketrans(
    {"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)
_STRING_ESCAPE: Final = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
_NOT_NAME: Final = re.compile(r"[^A-Za-z0-9_]")
_NUMERIC_START: Final = frozenset("0123456789+-.")
# The event's keys that become tags, in the sorted order InfluxDB stores them in.
_EVENT_TAGS: Final = (
    "area", "cause", "device_class", "domain", "entity_id", "event_type", "floor", "unit",
)  # fmt: skip
_STATE_TAGS: Final = ("area", "device_class", "domain", "entity_id", "floor")
# Escaping with str.translate costs about a microsecond a value; the values repeat from
# event to event (an entity's tags, its states), so each tag set is escaped once.
_CACHE_MAX: Final = 50_000
_TAG_SETS: dict[tuple[Any, ...], tuple[str, str]] = {}
_TAG_VALUES: dict[str, str] = {}
_NEEDS_STRING_ESCAPE: Final = re.compile(r'[\\"\n\r]').search
# Field names by attribute key and prefix; keys repeat from event to event.
_FIELD_NAMES: dict[tuple[str, str], str] = {}
# The fields of a stored attribute set (JSON text): most events repeat their entity's
# last set, and parsing and typing it again cost more than the rest of the line. Short
# texts only, so the cache stays small.
_JSON_FIELDS: dict[tuple[str, str, bool], tuple[str, ...]] = {}
_JSON_FIELDS_MAX: Final = 5000
_JSON_FIELDS_TEXT_MAX: Final = 1024


class InvalidEvent(ValueError):
    """The event lacks what a point needs (a time in the accepted range, an event type)."""


def is_numeric_state(state: str) -> bool:
    """The integration's rule for a numeric state: a finite float, spelled as a number."""
    if not state or state[0] not in _NUMERIC_START:
        return False
    try:
        return math.isfinite(float(state))
    except ValueError:
        return False


def _tag(value: str) -> str:
    escaped = _TAG_VALUES.get(value)
    if escaped is None:
        if len(_TAG_VALUES) >= _CACHE_MAX:
            _TAG_VALUES.clear()
        escaped = _TAG_VALUES[value] = value.translate(_TAG_ESCAPE)
    return escaped


def _string(value: str) -> str | None:
    """A string field's value in quotes, or None when InfluxDB would refuse its length."""
    escaped = value.translate(_STRING_ESCAPE) if _NEEDS_STRING_ESCAPE(value) else value
    if len(escaped) * 4 > MAX_STRING_BYTES and len(escaped.encode()) > MAX_STRING_BYTES:
        return None
    return f'"{escaped}"'


def _float(value: float) -> str:
    return repr(float(value))


def _field_name(prefix: str, key: str) -> str:
    name = _FIELD_NAMES.get((prefix, key))
    if name is None:
        if len(_FIELD_NAMES) >= _CACHE_MAX:
            _FIELD_NAMES.clear()
        name = _FIELD_NAMES[(prefix, key)] = prefix + _NOT_NAME.sub("_", key)
    return name


def _as_dict(value: Any) -> dict[str, Any] | None:
    """A JSON object column as a dict: the outbox hands them over as the stored JSON
    text, /api/v1/events as orjson Fragments (of that text), other callers as dicts."""
    if isinstance(value, orjson.Fragment):
        value = orjson.dumps(value)
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else None


def _json_fields(prefix: str, value: Any, strings: bool, out: list[str]) -> None:
    """``_typed_fields`` of a JSON object column, remembered by its stored text."""
    if not isinstance(value, str) or len(value) > _JSON_FIELDS_TEXT_MAX:
        values = _as_dict(value)
        if values:
            _typed_fields(prefix, values, strings, out)
        return
    key = (prefix, value, strings)
    fields = _JSON_FIELDS.get(key)
    if fields is None:
        if len(_JSON_FIELDS) >= _JSON_FIELDS_MAX:
            _JSON_FIELDS.clear()
        typed: list[str] = []
        values = _as_dict(value)
        if values:
            _typed_fields(prefix, values, strings, typed)
        fields = _JSON_FIELDS[key] = tuple(typed)
    out += fields


def _typed_fields(prefix: str, values: Mapping[str, Any], strings: bool, out: list[str]) -> None:
    """One field per key, its type in its name: ``<prefix><key>_num|_bool|_str|_json``."""
    for key, value in values.items():
        if value is None:
            continue
        name = _field_name(prefix, key)
        # bool before int: it is one.
        if value is True or value is False:
            out.append(f"{name}_bool={'true' if value else 'false'}")
        elif isinstance(value, int | float):
            number = float(value)
            if math.isfinite(number):
                out.append(f"{name}_num={number!r}")
        elif not strings:
            continue
        elif isinstance(value, str):
            text = _string(value)
            if text is not None:
                out.append(f"{name}_str={text}")
        else:
            text = _string(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode())
            if text is not None:
                out.append(f"{name}_json={text}")


def _tags(values: dict[str, Any], keys: tuple[str, ...]) -> str:
    """``,key=value`` for each of ``keys`` with a non-empty value."""
    return "".join(f",{key}={_tag(str(values[key]))}" for key in keys if values[key])


def _tag_sets(event: Mapping[str, Any]) -> tuple[str, str]:
    """The event's tags on ``homeiq``, and on ``homeiq_states`` (a subset of them)."""
    values = tuple(map(event.get, _EVENT_TAGS))
    tags = _TAG_SETS.get(values)
    if tags is None:
        if len(_TAG_SETS) >= _CACHE_MAX:
            _TAG_SETS.clear()
        named = dict(zip(_EVENT_TAGS, values, strict=True))
        tags = _TAG_SETS[values] = (_tags(named, _EVENT_TAGS), _tags(named, _STATE_TAGS))
    return tags


def event_lines(
    event: Mapping[str, Any], *, strings: bool = True, time_us: int | None = None
) -> list[str]:
    """The event's points as lines (no trailing newline), timestamps in microseconds.

    ``event`` is an event as /api/v1/events answers it (the contract's Event fields, the
    JSON columns as dicts, orjson Fragments or their stored JSON text); ``time_us`` saves
    parsing ``time_fired`` when the caller has it as stored.
    """
    if time_us is None:
        time_us = parse_time_us(event.get("time_fired"))
        if time_us is None:
            raise InvalidEvent("time_fired: expected a time from 1970 to before 2200")
    event_type = event.get("event_type")
    if not event_type:
        raise InvalidEvent("event_type: expected a non-empty string")
    stamp = f" {time_us}"
    tags, state_tags = _tag_sets(event)
    fields = ["events=1.0"]
    state = event.get("state")
    numeric = event.get("numeric_value")
    if numeric is not None and math.isfinite(numeric):
        fields.append(f"value={float(numeric)!r}")
    prev_seconds = event.get("prev_state_seconds")
    if prev_seconds is not None and math.isfinite(prev_seconds):
        fields.append(f"prev_state_seconds={float(prev_seconds)!r}")
    if strings:
        for key in ("state", "cause_name"):
            value = event.get(key)
            if isinstance(value, str):
                text = _string(value)
                if text is not None:
                    fields.append(f"{key}={text}")
    common = len(fields)
    attributes = event.get("attributes")
    if attributes:
        _json_fields("attr_", attributes, strings, fields)
    data = event.get("data")
    if data:
        _json_fields("data_", data, strings, fields)
    line = f"{EVENT_MEASUREMENT}{tags} {','.join(fields)}{stamp}"
    if len(line) * 4 > MAX_LINE_BYTES and len(line.encode()) > MAX_LINE_BYTES:
        # Too long for VictoriaMetrics, which would drop it silently: the numbers stay.
        kept = fields[:common]
        if attributes:
            _json_fields("attr_", attributes, False, kept)
        if data:
            _json_fields("data_", data, False, kept)
        line = f"{EVENT_MEASUREMENT}{tags} {','.join(kept)}{stamp}"
    lines = [line]
    if event_type in STATE_EVENT_TYPES and event.get("entity_id"):
        old = event.get("old_state")
        if (
            isinstance(old, str)
            and old != state
            and not is_numeric_state(old)
            and old.strip() != ""
        ):
            lines.append(f"{STATE_MEASUREMENT}{state_tags},state={_tag(old)} active=0.0{stamp}")
        if (
            isinstance(state, str)
            and numeric is None
            and state.strip()
            and not is_numeric_state(state)
        ):
            lines.append(f"{STATE_MEASUREMENT}{state_tags},state={_tag(state)} active=1.0{stamp}")
    return lines


@dataclass(frozen=True, slots=True)
class Rollup:
    """One row of rollups_hourly or rollups_daily: an entity's figures over one period."""

    entity_id: str
    period: Literal["hour", "day"]
    start_us: int
    count: int
    min: float | None
    max: float | None
    sum: float | None
    events: int
    transitions: int
    time_in_state: Mapping[str, float]


def rollup_lines(rollup: Rollup) -> list[str]:
    """The rollup's points, at the start of its period (microseconds). Like the history
    API, numbers for an entity with numeric states, time in state for the others."""
    measurement, states_measurement = ROLLUP_MEASUREMENTS[rollup.period]
    domain = rollup.entity_id.partition(".")[0]
    tags = f",domain={_tag(domain)},entity_id={_tag(rollup.entity_id)}"
    stamp = f" {rollup.start_us}"
    fields = [f"events={_float(rollup.events)}", f"transitions={_float(rollup.transitions)}"]
    if rollup.count and rollup.sum is not None:
        fields.append(f"count={_float(rollup.count)}")
        if rollup.min is not None and rollup.max is not None:
            fields += [f"min={_float(rollup.min)}", f"max={_float(rollup.max)}"]
        fields += [f"mean={_float(rollup.sum / rollup.count)}", f"sum={_float(rollup.sum)}"]
    lines = [f"{measurement}{tags} {','.join(fields)}{stamp}"]
    if not rollup.count:
        for state, seconds in rollup.time_in_state.items():
            if state.strip() and not is_numeric_state(state):
                lines.append(
                    f"{states_measurement}{tags},state={_tag(state)}"
                    f" seconds={_float(seconds)}{stamp}"
                )
    return lines


def body(lines: Iterable[str]) -> bytes:
    """Lines as one write request's body."""
    return "\n".join(lines).encode()
