"""Captured events as the wire contract's EVENT objects, serialized a chunk at a time.

What a state change says about its entity (entity id, domain, registry facts, kept
attributes, device class, unit, friendly name) only changes when the registries, the
options or the state's attributes object change. It is serialized once per entity
(`EntityWire`), and an event gets it one of two ways:
- to an add-on that reads a batch's `entities` (contract Health.features), as a
  reference: the entity's facts go once into the batch's `EntityTable`, and the event's
  `entity` key gives their index. Those facts were most of an event's bytes.
- otherwise spliced into every event as an `orjson.Fragment`, which orjson writes
  verbatim: a fragment `"sensor.x","domain":"sensor",...` as the value of the record's
  last key, `entity_id`, yields all those keys.
Per event only the few changing values go into a small dict. Optional keys without a
value are left out (the contract allows absent optional keys).

To an add-on that also reads a batch's `columns`, `encode_columns` writes a chunk as one
block of columns (contract EventColumns) instead: the same values, a list per field,
each event referring to its entity. The per-event steps are written out in both
encoders rather than shared through helper calls: they run for every captured event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
import math
import re
from typing import Any, Final, cast

from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_FRIENDLY_NAME,
    ATTR_UNIT_OF_MEASUREMENT,
)
import orjson

from .capture import Captured, OtherCaptured, StateCaptured
from .contract import ENTITY_FIELDS, EntityFacts, Event as EventRecord
from .enrich import EntityInfo

# Every key an event record gets, here and from enrich.py (EntityInfo.fields, snapshot):
# fields of the contract's Event, checked when this module loads, so that a field the
# contract renames fails here at once instead of as batches the add-on refuses.
EVENT_KEYS: Final = frozenset(
    {
        *("time_fired", "event_type", "origin", "data"),
        *("context_id", "context_parent_id", "context_user_id"),
        *("cause", "cause_name", "cause_id"),
        *("entity_id", "entity", "state", "old_state", "numeric_value", "prev_state_seconds"),
        *("last_changed", "last_reported", "attributes"),
        *("device_class", "state_class", "unit", "friendly_name"),
        *("domain", "area_id", "area", "floor", "labels"),
        *("device_id", "device_name", "device_manufacturer", "device_model"),
        *("outdoor_temperature", "weather_condition", "sun_elevation", "people_home"),
    }
)
if _NOT_IN_CONTRACT := EVENT_KEYS.difference(EventRecord.__struct_fields__):
    raise ImportError(f"contract.Event has no field {', '.join(sorted(_NOT_IN_CONTRACT))}")
# The keys of an entity's facts (EntityWire.facts): its fields as an event would carry
# them, and its default cause; checked against the contract's EntityFacts likewise.
FACT_KEYS: Final = frozenset(
    {
        *("entity_id", "domain", "attributes", "area_id", "area", "floor", "labels"),
        *("device_id", "device_name", "device_manufacturer", "device_model"),
        *("device_class", "state_class", "unit", "friendly_name", "cause", "cause_name"),
    }
)
if _NOT_FACTS := FACT_KEYS.difference(EntityFacts.__struct_fields__):
    raise ImportError(f"contract.EntityFacts has no field {', '.join(sorted(_NOT_FACTS))}")

ATTR_STATE_CLASS = "state_class"
# Attributes that become their own keys are not repeated inside `attributes`.
COLUMN_ATTRIBUTES = frozenset(
    {ATTR_FRIENDLY_NAME, ATTR_UNIT_OF_MEASUREMENT, ATTR_DEVICE_CLASS, ATTR_STATE_CLASS}
)
# Only states starting like a number are parsed: most text states skip the exception.
_NUMERIC_START = frozenset("0123456789+-.")
# Keys that are not str (event data may have them) need OPT_NON_STR_KEYS, which makes every
# dict slower to serialize: records are dumped without it, and again with it if that fails.
_DUMPS_OPTION = orjson.OPT_NON_STR_KEYS

type Cause = tuple[str, str | None, str | None]


def json_default(value: Any) -> Any:
    """Serialize what orjson does not know (sets, enums, State objects...) plainly."""
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


@dataclass(slots=True, eq=False)  # hashed by identity: the key of an EntityTable
class EntityWire:
    """An entity's serialized keys, valid until its state's attributes are another object
    (the capture says when: Captured's 11) or the registries or options change."""

    plain: orjson.Fragment  # when the event has its own cause (user, automation, script)
    caused: orjson.Fragment  # with the default cause: the device or the integration
    facts: bytes  # the contract's EntityFacts, with the default cause


class EntityTable:
    """One batch's entities (contract Batch.entities): each EntityWire its events refer
    to, once, in the order they first did. Filled by the encoding (in the encoder
    thread), read when the batch is sealed (on the loop, after the encoding)."""

    __slots__ = ("at", "facts")

    def __init__(self) -> None:
        self.at: dict[EntityWire, int] = {}
        self.facts: list[bytes] = []


@dataclass(frozen=True, slots=True)
class WireContext:
    """What one encoding reads, in the encoder thread: plain data the loop prepared, and
    caches it replaces (never clears) when they go stale, so the thread reads a
    consistent set."""

    # Registry facts per entity (the enricher's cache). The registries are the event
    # loop's to read: a chunk with an entity missing here is sent back for the loop to
    # look it up first (batch.encode_chunks), so every entity encoded has its facts.
    infos: Mapping[str, EntityInfo]
    entities: dict[str, EntityWire]  # written only by the encoding
    # Each entity's attributes as of the last event encoded (the capture sends them only
    # when they change): written only by the encoding, and never replaced, since the
    # capture does not send them again when `entities` is.
    attributes: dict[str, Mapping[str, Any]]
    users: Mapping[str, str | None]
    causes: Mapping[str, Cause]
    snapshot: Mapping[str, Any]
    keep_attributes: frozenset[str]
    drop_attributes: frozenset[str]


# What an add-on that does not read a batch's entities, or its columns, answers such a
# batch: the first unknown key it meets (the contract's own error text).
_SHORTER_FORM_REFUSED: Final = re.compile(
    r"^(events\[\d+\]\.entity|entities|columns): extra keys not allowed"
)


# An entity's facts that an event may name for itself: its cause (the contract's rule).
_CAUSE_KEYS: Final = frozenset(EntityFacts.__struct_fields__).difference(ENTITY_FIELDS)


def refuses_shorter_form(message: str) -> bool:
    """Whether an add-on's refusal says it reads neither a batch's entities nor its
    columns (Health.features)."""
    return _SHORTER_FORM_REFUSED.match(message) is not None


def plain_batch(body: bytes | memoryview) -> bytes | None:
    """The batch as events each carrying its entity's facts, the form every add-on reads;
    None if it is in that form already (or is no batch).

    For an add-on that refused a shorter form: one replaced by an earlier release while
    the batch waited in the spool. Blocks of columns become events again (an event has
    the keys its columns give it a value for); an event's own cause stays, the others
    take their entity's."""
    try:
        batch = orjson.loads(body)
        entities = batch.pop("entities", None)
        blocks = batch.pop("columns", None)
        if not entities and not blocks:
            return None
        if blocks:
            batch["events"] = [
                {name: values[at] for name, values in block.items() if values[at] is not None}
                for block in blocks
                for at in range(len(block["time_fired"]))
            ]
        for event in batch["events"]:
            if (at := event.pop("entity", None)) is None:
                continue
            own_cause = not _CAUSE_KEYS.isdisjoint(event)
            event.update(
                (key, value)
                for key, value in entities[at].items()
                if not (own_cause and key in _CAUSE_KEYS)
            )
        return orjson.dumps(batch)
    except (orjson.JSONDecodeError, TypeError, KeyError, IndexError, AttributeError):
        return None


def _dump_keys(fields: Mapping[str, Any]) -> bytes:
    """`fields` as JSON object members, without the braces."""
    return orjson.dumps(fields, default=json_default, option=_DUMPS_OPTION)[1:-1]


def _default_cause(info: EntityInfo) -> bytes:
    # No user and no automation in the chain: the device or its integration reported it.
    kind = "device" if info.device_id else "integration"
    return _dump_keys({"cause": kind, "cause_name": info.platform or info.fields["domain"]})


def _entity_wire(entity_id: str, attrs: Mapping[str, Any] | None, ctx: WireContext) -> EntityWire:
    """Serialize an entity's keys (for a removed entity, `attrs` is None)."""
    info = ctx.infos[entity_id]
    fields = dict(info.fields)
    if attrs is not None:
        if ctx.keep_attributes:
            fields["attributes"] = {k: attrs[k] for k in ctx.keep_attributes if k in attrs}
        else:
            drop = ctx.drop_attributes | COLUMN_ATTRIBUTES
            fields["attributes"] = {k: v for k, v in attrs.items() if k not in drop}
        for key, value in (
            ("device_class", attrs.get(ATTR_DEVICE_CLASS) or info.device_class),
            ("state_class", attrs.get(ATTR_STATE_CLASS)),
            ("unit", attrs.get(ATTR_UNIT_OF_MEASUREMENT) or info.unit),
            ("friendly_name", attrs.get(ATTR_FRIENDLY_NAME) or info.name),
        ):
            if value is not None:
                fields[key] = value
    plain = b"".join((orjson.dumps(entity_id), b",", _dump_keys(fields)))
    caused = b"".join((plain, b",", _default_cause(info)))
    facts = b"".join((b'{"entity_id":', caused, b"}"))
    return EntityWire(orjson.Fragment(plain), orjson.Fragment(caused), facts)


def encode(events: Sequence[Captured], ctx: WireContext, table: EntityTable | None) -> bytes:
    """The events as JSON objects joined by commas, without the list's brackets; with a
    `table`, their entities go there (the batch's) and each event refers to its own.

    A state change of an entity that has a state (nearly every event) is built here, in
    one loop without helper calls per event, starting from a dict literal: this runs for
    every captured event. Other events and removals go through `_other_record`.
    """
    table_at = None if table is None else table.at
    table_facts = None if table is None else table.facts
    records: list[dict[str, Any]] = []
    append = records.append
    entities = ctx.entities
    causes = ctx.causes
    snapshot = ctx.snapshot
    isfinite = math.isfinite
    for captured in events:
        if captured[1] is None or captured[7] is None:
            append(_other_record(captured, ctx))
            continue
        (
            event_type, entity_id, time_fired, origin, context_id, user_id, parent_id,
            state, old_state, last_changed, old_last_changed, new_attributes, reported,
        ) = captured  # fmt: skip
        record: dict[str, Any] = {
            "time_fired": time_fired,
            "event_type": event_type,
            "origin": origin,
            "context_id": context_id,
            "state": state,
            "last_changed": last_changed,
        }
        if state and state[0] in _NUMERIC_START:  # only these can be numbers
            try:
                value = float(state)
            except ValueError:
                pass
            else:
                if isfinite(value):
                    record["numeric_value"] = value
        if old_state is not None:
            record["old_state"] = old_state
            if old_state != state and old_last_changed is not None and last_changed is not None:
                # The difference of the two datetimes: whole microseconds, the times' own
                # precision (the store keeps those as integers, 4 bytes).
                record["prev_state_seconds"] = (last_changed - old_last_changed).total_seconds()
        if reported is not None:
            record["last_reported"] = reported
        if new_attributes is not None:
            ctx.attributes[entity_id] = new_attributes
            wire = entities[entity_id] = _entity_wire(entity_id, new_attributes, ctx)
        elif (cached := entities.get(entity_id)) is not None:
            wire = cached
        else:  # the cache was replaced (registries or options changed)
            wire = entities[entity_id] = _entity_wire(entity_id, ctx.attributes[entity_id], ctx)
        # Its fragment carries the entity's other keys (see module docstring), with the
        # default cause unless the event has its own.
        wire_keys = wire.caused
        if user_id is not None or parent_id is not None or causes:
            if parent_id is not None:
                record["context_parent_id"] = parent_id
            cause: Cause | None
            if user_id is not None:
                record["context_user_id"] = user_id
                cause = ("user", ctx.users.get(user_id), user_id)
            else:  # _cause, inlined: a home with automations has `causes` all the time
                cause = causes.get(context_id) or (causes.get(parent_id) if parent_id else None)
            if cause is not None:
                _add_cause(record, cause)
                wire_keys = wire.plain
        if snapshot:
            record.update(snapshot)
        if table_at is None:
            record["entity_id"] = wire_keys
        else:  # its cause, if its own, is in the record: it replaces the entity's default
            at = table_at.get(wire)
            if at is None:
                at = table_at[wire] = len(table_at)
                table_facts.append(wire.facts)  # type: ignore[union-attr]
            record["entity"] = at
        append(record)
    try:
        return orjson.dumps(records, default=json_default)[1:-1]
    except orjson.JSONEncodeError:
        return orjson.dumps(records, default=json_default, option=_DUMPS_OPTION)[1:-1]


def encode_columns(events: Sequence[Captured], ctx: WireContext, table: EntityTable) -> bytes:
    """The events as one block of columns (contract EventColumns), each event referring to
    its entity in `table` (the batch's).

    The same values as `encode` gives, column by column: a column is a list with one
    value per event. The columns most events fill are appended to for every event; the
    others (a user, a parent context, an own cause, a report's time, data, a snapshot)
    are made when an event first has a value for one, null for the events before it.
    """
    count = len(events)
    time_fired: list[Any] = []
    event_type: list[str] = []
    origin: list[str] = []
    context_id: list[str] = []
    state: list[str | None] = []
    old_state: list[str | None] = []
    last_changed: list[datetime | None] = []
    numeric_value: list[float | None] = []
    prev_state_seconds: list[float | None] = []
    entity: list[int | None] = []
    block: dict[str, list[Any]] = {
        "time_fired": time_fired,
        "event_type": event_type,
        "origin": origin,
        "context_id": context_id,
        "state": state,
        "old_state": old_state,
        "last_changed": last_changed,
        "numeric_value": numeric_value,
        "prev_state_seconds": prev_state_seconds,
        "entity": entity,
    }

    def put(name: str, at: int, value: Any) -> None:
        if (column := block.get(name)) is None:
            column = block[name] = [None] * count
        column[at] = value

    table_at = table.at
    entities = ctx.entities
    causes = ctx.causes
    isfinite = math.isfinite
    for at, captured in enumerate(events):
        if captured[1] is None or captured[7] is None:
            record = _other_record(captured, ctx, table)
            time_fired.append(record.pop("time_fired"))
            event_type.append(record.pop("event_type"))
            origin.append(record.pop("origin"))
            context_id.append(record.pop("context_id"))
            state.append(None)
            old_state.append(record.pop("old_state", None))
            last_changed.append(None)
            numeric_value.append(None)
            prev_state_seconds.append(None)
            entity.append(record.pop("entity", None))
            record.pop("state", None)
            for name, value in record.items():
                put(name, at, value)
            continue
        (
            kind, entity_id, fired, event_origin, context, user_id, parent_id,
            new_state, previous, changed, old_changed, new_attributes, reported,
        ) = captured  # fmt: skip
        time_fired.append(fired)
        event_type.append(kind)
        origin.append(event_origin)
        context_id.append(context)
        state.append(new_state)
        last_changed.append(changed)
        number = None
        if new_state and new_state[0] in _NUMERIC_START:  # only these can be numbers
            try:
                value = float(new_state)
            except ValueError:
                pass
            else:
                if isfinite(value):
                    number = value
        numeric_value.append(number)
        old_state.append(previous)
        seconds = None
        if (
            previous is not None
            and previous != new_state
            and old_changed is not None
            and changed is not None
        ):
            seconds = (changed - old_changed).total_seconds()  # as `encode`: see there
        prev_state_seconds.append(seconds)
        if reported is not None:
            put("last_reported", at, reported)
        if new_attributes is not None:
            ctx.attributes[entity_id] = new_attributes
            wire = entities[entity_id] = _entity_wire(entity_id, new_attributes, ctx)
        elif (cached := entities.get(entity_id)) is not None:
            wire = cached
        else:  # the cache was replaced (registries or options changed)
            wire = entities[entity_id] = _entity_wire(entity_id, ctx.attributes[entity_id], ctx)
        if user_id is not None or parent_id is not None or causes:
            if parent_id is not None:
                put("context_parent_id", at, parent_id)
            if user_id is not None:
                put("context_user_id", at, user_id)
            if (cause := _cause(context, user_id, parent_id, ctx)) is not None:
                put("cause", at, cause[0])
                if cause[1] is not None:
                    put("cause_name", at, cause[1])
                if cause[2] is not None:
                    put("cause_id", at, cause[2])
        index = table_at.get(wire)
        if index is None:
            index = table_at[wire] = len(table_at)
            table.facts.append(wire.facts)
        entity.append(index)
    for name, value in ctx.snapshot.items():  # the same for every event of the block
        block[name] = [value] * count
    try:
        return orjson.dumps(block, default=json_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(block, default=json_default, option=_DUMPS_OPTION)


def _cause(
    context_id: str, user_id: str | None, parent_id: str | None, ctx: WireContext
) -> Cause | None:
    """Who or what started the event: its user, or the automation or script its context
    (or the context's parent) comes from; None if neither."""
    if user_id is not None:
        return ("user", ctx.users.get(user_id), user_id)
    causes = ctx.causes
    return causes.get(context_id) or (causes.get(parent_id) if parent_id else None)


def _add_cause(record: dict[str, Any], cause: Cause) -> None:
    record["cause"] = cause[0]
    if cause[1] is not None:
        record["cause_name"] = cause[1]
    if cause[2] is not None:
        record["cause_id"] = cause[2]


def _other_record(
    captured: Captured, ctx: WireContext, table: EntityTable | None = None
) -> dict[str, Any]:
    """The record of any event but a state change of an entity with a state: another
    event type, or a state change that removed its entity (which refers to its facts in
    `table` if given, else carries them)."""
    event_type, entity_id, time_fired, origin, context_id, user_id, parent_id = captured[:7]
    record: dict[str, Any] = {
        "time_fired": datetime.fromtimestamp(time_fired, UTC)
        if isinstance(time_fired, float)  # not a state event: its timestamp
        else time_fired,
        "event_type": event_type,
        "origin": origin,
        "context_id": context_id,
    }
    if parent_id is not None:
        record["context_parent_id"] = parent_id
    if user_id is not None:
        record["context_user_id"] = user_id
    cause = _cause(context_id, user_id, parent_id, ctx)
    if cause is not None:
        _add_cause(record, cause)
    if entity_id is None:
        if data := cast("OtherCaptured", captured)[7]:
            record["data"] = data
        if cause is None:
            record["cause"] = "system"
    else:  # a removal: rare, its entity keys not cached
        record["state"] = None
        if (old_state := cast("StateCaptured", captured)[8]) is not None:
            record["old_state"] = old_state
    if ctx.snapshot:
        record.update(ctx.snapshot)
    if entity_id is None:
        return record
    wire = _entity_wire(entity_id, None, ctx)
    if table is None:  # last key: its fragment carries the entity's other keys
        record["entity_id"] = wire.caused if cause is None else wire.plain
    else:  # its cause, if its own, is in the record: it replaces the entity's default
        record["entity"] = table.at[wire] = len(table.at)
        table.facts.append(wire.facts)
    return record
