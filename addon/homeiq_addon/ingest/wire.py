"""The ingest fast path: decode and validate a body in C (msgspec), never more permissive.

Parsing with orjson and then running the rules in Python cost ~8 µs per event, half of
the ingest's Python budget; msgspec decodes into typed structs and checks the same rules
in C in ~2.5 µs. ``schema.py`` stays THE contract and the error path: these types mirror
``EVENT_FIELDS`` one for one (checked at import), and whenever ``decode_fast`` is not
sure it answers None and the caller falls back to orjson + voluptuous, which accepts the
body or names the failing field. tests/addon/test_schema.py checks on mutations that
whatever this accepts, voluptuous accepts.

The rules msgspec cannot express (ISO 8601 times with an offset, in the accepted range;
state events need an entity id) run in Python in ``decode_fast``; the parsed times are
kept for the rows. The nesting limit of ``data`` and ``attributes`` holds where the rows
are built: orjson refuses to write anything deeper, and the batch goes the slow way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from .schema import (
    _BATCH_ID_RE,
    _ENTITY_ID_RE,
    _MAX_INT,
    CAUSES,
    EVENT_FIELDS,
    MAX_EVENTS,
    MAX_STR,
    ORIGINS,
    STATE_EVENT_TYPES,
    parse_time_us,
)

# Lengths count code points in msgspec as in Python's len().
type _Str = Annotated[str, Meta(max_length=MAX_STR)]
type _Id64 = Annotated[str, Meta(min_length=1, max_length=64)]
# Only a length here: the time rule (parse_time_us) runs in decode_fast.
type _Time = Annotated[str, Meta(max_length=64)]
# JSON integers are range-checked like the schema's; floats from JSON are always finite
# (msgspec refuses NaN, Infinity and out-of-range literals).
type _Num = Annotated[int, Meta(ge=-_MAX_INT, le=_MAX_INT)] | float
type _EntityId = Annotated[str, Meta(max_length=MAX_STR, pattern=_ENTITY_ID_RE.pattern)]
type _Obj = dict[str, Any]
type _Origin = Literal["LOCAL", "REMOTE"]
type _Cause = Literal["user", "automation", "script", "device", "integration", "system"]


class Event(Struct, forbid_unknown_fields=True, gc=False):
    """One event of EVENT_FIELDS; None for absent and for null alike."""

    time_fired: _Time
    event_type: _Id64
    origin: _Origin
    context_id: _Id64
    context_user_id: _Id64 | None = None
    context_parent_id: _Id64 | None = None
    data: _Obj | None = None
    entity_id: _EntityId | None = None
    domain: _Str | None = None
    state: _Str | None = None
    old_state: _Str | None = None
    numeric_value: _Num | None = None
    last_changed: _Time | None = None
    last_reported: _Time | None = None
    prev_state_seconds: _Num | None = None
    attributes: _Obj | None = None
    area_id: _Str | None = None
    area: _Str | None = None
    floor: _Str | None = None
    device_id: _Str | None = None
    device_name: _Str | None = None
    device_manufacturer: _Str | None = None
    device_model: _Str | None = None
    labels: Annotated[list[_Str], Meta(max_length=100)] | None = None
    device_class: _Str | None = None
    state_class: _Str | None = None
    unit: _Str | None = None
    friendly_name: _Str | None = None
    cause: _Cause | None = None
    cause_name: _Str | None = None
    cause_id: _Str | None = None
    outdoor_temperature: _Num | None = None
    weather_condition: _Str | None = None
    sun_elevation: _Num | None = None
    people_home: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None


class Source(Struct, forbid_unknown_fields=True, gc=False):
    instance_id: _Id64
    integration_version: Annotated[str, Meta(min_length=1, max_length=32)]


class Batch(Struct, forbid_unknown_fields=True):
    batch_id: Annotated[str, Meta(pattern=_BATCH_ID_RE.pattern)]
    source: Source
    events: Annotated[list[Event], Meta(min_length=1, max_length=MAX_EVENTS)]


def _check_mirror() -> None:
    # The struct must list exactly the schema's fields with the same required-ness, so a
    # rule added to EVENT_FIELDS cannot be silently skipped here.
    info = msgspec.inspect.type_info(Event)
    assert isinstance(info, msgspec.inspect.StructType)
    mine = {f.name: f.required for f in info.fields}
    theirs = {name: spec[0] for name, spec in EVENT_FIELDS.items()}
    if mine != theirs:
        raise RuntimeError(f"wire.Event does not mirror schema.EVENT_FIELDS: {mine} != {theirs}")
    if get_args(_Cause.__value__) != CAUSES or get_args(_Origin.__value__) != ORIGINS:
        raise RuntimeError("wire.Event's literals do not mirror schema.CAUSES/ORIGINS")


_check_mirror()
_DECODER: Final = msgspec.json.Decoder(Batch)


@dataclass(slots=True)
class Decoded:
    """A batch the fast path fully validated, with its events' parsed times."""

    batch: Batch
    times: list[int]  # time_fired, UTC epoch µs
    agos: list[int | None]  # time_fired - last_changed in µs (0 when equal, None if absent)


def decode_fast(body: bytes) -> Decoded | None:
    """The validated batch, or None: then orjson + voluptuous decide (and name the error)."""
    try:
        batch = _DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nested deeper than msgspec goes; orjson names the problem.
        return None
    times: list[int] = []
    agos: list[int | None] = []
    for ev in batch.events:
        fired = ev.time_fired
        t = parse_time_us(fired)
        if t is None:
            return None
        changed = ev.last_changed
        if changed is None:
            agos.append(None)
        elif changed == fired:
            agos.append(0)
        else:
            c = parse_time_us(changed)
            if c is None:
                return None
            agos.append(t - c)
        if ev.entity_id is None and ev.event_type in STATE_EVENT_TYPES:
            return None
        if ev.last_reported is not None and parse_time_us(ev.last_reported) is None:
            return None
        times.append(t)
    return Decoded(batch, times, agos)
