"""Enrichment in batches: registry facts cached per entity, then records built off the loop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import math
from typing import Any

from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_FRIENDLY_NAME,
    ATTR_UNIT_OF_MEASUREMENT,
    EVENT_STATE_CHANGED,
    EVENT_STATE_REPORTED,
)
from homeassistant.core import Context, Event, HomeAssistant, State
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
)
import orjson

ATTR_STATE_CLASS = "state_class"
# Attributes that become their own columns are not repeated inside `attributes`.
COLUMN_ATTRIBUTES = frozenset(
    {ATTR_FRIENDLY_NAME, ATTR_UNIT_OF_MEASUREMENT, ATTR_DEVICE_CLASS, ATTR_STATE_CLASS}
)
STATE_EVENTS = frozenset({EVENT_STATE_CHANGED, EVENT_STATE_REPORTED})


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """What the registries know about one entity (immutable: safe to read from a thread)."""

    area_id: str | None = None
    area: str | None = None
    floor: str | None = None
    device_id: str | None = None
    device_name: str | None = None
    device_manufacturer: str | None = None
    device_model: str | None = None
    labels: tuple[str, ...] = ()
    device_class: str | None = None
    unit: str | None = None
    name: str | None = None
    platform: str | None = None


NO_INFO = EntityInfo()


@dataclass(frozen=True, slots=True)
class BatchContext:
    """Everything a batch needs, gathered on the loop, then only read in the worker thread."""

    entities: Mapping[str, EntityInfo]
    users: Mapping[str, str | None]
    causes: Mapping[str, tuple[str, str | None, str | None]]
    snapshot: Mapping[str, Any]
    keep_attributes: frozenset[str]
    drop_attributes: frozenset[str]


class Enricher:
    """Cache registry facts per entity; the cache is dropped when any registry changes."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Bind the registries."""
        self.hass = hass
        self._ent_reg = er.async_get(hass)
        self._dev_reg = dr.async_get(hass)
        self._area_reg = ar.async_get(hass)
        self._floor_reg = fr.async_get(hass)
        self.entities: dict[str, EntityInfo] = {}
        self.users: dict[str, str | None] = {}

    def invalidate(self) -> None:
        """Start a new cache; a batch being built keeps reading the old, consistent one."""
        self.entities = {}

    def entity_info(self, entity_id: str) -> EntityInfo:
        """Return (and cache) the registry facts of an entity: a few dict lookups."""
        info = self.entities.get(entity_id)
        if info is None:
            info = self._lookup(entity_id)
            self.entities[entity_id] = info
        return info

    def _lookup(self, entity_id: str) -> EntityInfo:
        entry = self._ent_reg.async_get(entity_id)
        if entry is None:
            return NO_INFO
        device = self._dev_reg.async_get(entry.device_id) if entry.device_id else None
        area_id = entry.area_id or (device.area_id if device else None)
        area = self._area_reg.async_get_area(area_id) if area_id else None
        floor = self._floor_reg.async_get_floor(area.floor_id) if area and area.floor_id else None
        return EntityInfo(
            area_id=area_id,
            area=area.name if area else None,
            floor=floor.name if floor else None,
            device_id=entry.device_id,
            device_name=(device.name_by_user or device.name) if device else None,
            device_manufacturer=device.manufacturer if device else None,
            device_model=device.model if device else None,
            labels=tuple(sorted(entry.labels)),
            device_class=entry.device_class or entry.original_device_class,
            unit=entry.unit_of_measurement,
            name=entry.name or entry.original_name,
            platform=entry.platform,
        )

    async def async_prepare(self, events: Iterable[Event[Any]]) -> None:
        """Fill the caches a batch needs (entities invalidated since capture, user names)."""
        missing_users: set[str] = set()
        for event in events:
            if event.event_type in STATE_EVENTS:
                self.entity_info(event.data["entity_id"])
            user_id = event.context.user_id
            if user_id is not None and user_id not in self.users:
                missing_users.add(user_id)
        for user_id in missing_users:
            user = await self.hass.auth.async_get_user(user_id)
            self.users[user_id] = user.name if user else None


def _numeric(state: str) -> float | None:
    try:
        value = float(state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _attributes(state: State, ctx: BatchContext) -> dict[str, Any]:
    attrs = state.attributes
    if ctx.keep_attributes:
        return {k: attrs[k] for k in ctx.keep_attributes if k in attrs}
    drop = ctx.drop_attributes
    return {k: v for k, v in attrs.items() if k not in drop and k not in COLUMN_ATTRIBUTES}


def _state_fields(record: dict[str, Any], event: Event[Any], ctx: BatchContext) -> EntityInfo:
    data = event.data
    entity_id: str = data["entity_id"]
    info = ctx.entities.get(entity_id, NO_INFO)
    new: State | None = data.get("new_state")
    old: State | None = data.get("old_state")
    record["entity_id"] = entity_id
    record["domain"] = entity_id.partition(".")[0]
    record["old_state"] = old.state if old is not None else None
    if new is None:
        record["state"] = None
    else:
        attrs = new.attributes
        record["state"] = new.state
        record["numeric_value"] = _numeric(new.state)
        record["last_changed"] = new.last_changed
        if old is not None and old.state != new.state:
            record["prev_state_seconds"] = new.last_changed_timestamp - old.last_changed_timestamp
        record["attributes"] = _attributes(new, ctx)
        record["device_class"] = attrs.get(ATTR_DEVICE_CLASS) or info.device_class
        record["state_class"] = attrs.get(ATTR_STATE_CLASS)
        record["unit"] = attrs.get(ATTR_UNIT_OF_MEASUREMENT) or info.unit
        record["friendly_name"] = attrs.get(ATTR_FRIENDLY_NAME) or info.name
    if info is not NO_INFO:
        record["area_id"] = info.area_id
        record["area"] = info.area
        record["floor"] = info.floor
        record["device_id"] = info.device_id
        record["device_name"] = info.device_name
        record["device_manufacturer"] = info.device_manufacturer
        record["device_model"] = info.device_model
        record["labels"] = list(info.labels)
    return info


def build_record(event: Event[Any], ctx: BatchContext) -> dict[str, Any]:
    """Turn one captured event into the wire contract's EVENT (runs in a worker thread)."""
    context = event.context
    record: dict[str, Any] = {
        "time_fired": event.time_fired,
        "event_type": event.event_type,
        "origin": event.origin.value,
        "context_id": context.id,
    }
    if context.user_id is not None:
        record["context_user_id"] = context.user_id
    if context.parent_id is not None:
        record["context_parent_id"] = context.parent_id
    info: EntityInfo | None = None
    if event.event_type in STATE_EVENTS:
        info = _state_fields(record, event, ctx)
    elif event.data:
        record["data"] = event.data
    _cause(record, context, info, ctx)
    record.update(ctx.snapshot)
    return record


def _cause(
    record: dict[str, Any], context: Context, info: EntityInfo | None, ctx: BatchContext
) -> None:
    user_id = context.user_id
    parent_id = context.parent_id
    if user_id is not None:
        record["cause"] = "user"
        record["cause_name"] = ctx.users.get(user_id)
        record["cause_id"] = user_id
        return
    origin = ctx.causes.get(context.id) or (ctx.causes.get(parent_id) if parent_id else None)
    if origin is not None:
        record["cause"], record["cause_name"], record["cause_id"] = origin
    elif info is None:
        record["cause"] = "system"
    else:
        # No user and no automation in the chain: the device or its integration reported it.
        record["cause"] = "device" if info.device_id else "integration"
        record["cause_name"] = info.platform or record["domain"]


def snapshot(
    hass: HomeAssistant, weather_entity: str | None, sun: bool, people: bool
) -> dict[str, Any]:
    """Outdoor weather, sun elevation and people home, read once per batch on the loop."""
    snap: dict[str, Any] = {}
    if weather_entity and (weather := hass.states.get(weather_entity)) is not None:
        temperature = weather.attributes.get("temperature")
        if isinstance(temperature, int | float):
            snap["outdoor_temperature"] = float(temperature)
        snap["weather_condition"] = weather.state
    if sun and (sun_state := hass.states.get("sun.sun")) is not None:
        elevation = sun_state.attributes.get("elevation")
        if isinstance(elevation, int | float):
            snap["sun_elevation"] = float(elevation)
    if people:
        snap["people_home"] = sum(
            1 for person in hass.states.async_all("person") if person.state == "home"
        )
    return snap


def _json_default(value: Any) -> Any:
    """Serialize what orjson does not know (sets, enums, State objects...) plainly."""
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


def serialize_batch(
    batch_id: str, source: Mapping[str, str], events: list[Event[Any]], ctx: BatchContext
) -> bytes:
    """The ingest body for one batch (worker thread)."""
    return orjson.dumps(
        {
            "batch_id": batch_id,
            "source": source,
            "events": [build_record(event, ctx) for event in events],
        },
        default=_json_default,
        option=orjson.OPT_NON_STR_KEYS,
    )
