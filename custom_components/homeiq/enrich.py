"""Enrichment in batches: registry facts cached per entity, then records built off the loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
import math
from typing import Any

from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_FRIENDLY_NAME,
    ATTR_UNIT_OF_MEASUREMENT,
    EVENT_STATE_CHANGED,
    EVENT_STATE_REPORTED,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
)

ATTR_STATE_CLASS = "state_class"
# Attributes that become their own columns are not repeated inside `attributes`.
COLUMN_ATTRIBUTES = frozenset(
    {ATTR_FRIENDLY_NAME, ATTR_UNIT_OF_MEASUREMENT, ATTR_DEVICE_CLASS, ATTR_STATE_CLASS}
)
STATE_EVENTS = frozenset({EVENT_STATE_CHANGED, EVENT_STATE_REPORTED})
_NUMERIC_START = frozenset("0123456789+-.")


@dataclass(slots=True)
class Columns:
    """Captured events, one list per field (see Capture._append); row i is one event."""

    event_type: list[str] = field(default_factory=list)
    fired: list[float] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    context_id: list[str] = field(default_factory=list)
    user_id: list[str | None] = field(default_factory=list)
    parent_id: list[str | None] = field(default_factory=list)
    entity_id: list[str | None] = field(default_factory=list)
    value: list[Any] = field(default_factory=list)  # new state, or the data of other events
    attrs_key: list[int | None] = field(default_factory=list)
    new_changed: list[float | None] = field(default_factory=list)
    old_state: list[str | None] = field(default_factory=list)
    old_changed: list[float | None] = field(default_factory=list)
    # id -> the new states' attributes, kept once each
    attributes: dict[int, Mapping[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of events."""
        return len(self.fired)


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
    # The record fields these facts become, built once per entity (record.update is cheap).
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, entity_id: str, **facts: Any) -> EntityInfo:
        """Compute `fields` from the facts (only those known)."""
        fields: dict[str, Any] = {"domain": entity_id.partition(".")[0]}
        for key in ("area_id", "area", "floor", "device_id", "device_name"):
            if facts.get(key) is not None:
                fields[key] = facts[key]
        for key in ("manufacturer", "model"):
            if facts.get(f"device_{key}") is not None:
                fields[f"device_{key}"] = facts[f"device_{key}"]
        if "labels" in facts:
            fields["labels"] = list(facts["labels"])
        return cls(**facts, fields=fields)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """Everything a batch needs, gathered on the loop, then only read in the worker thread."""

    entities: Mapping[str, EntityInfo]
    attributes: Mapping[int, Mapping[str, Any]]
    users: Mapping[str, str | None]
    causes: Mapping[str, tuple[str, str | None, str | None]]
    snapshot: Mapping[str, Any]
    keep_attributes: frozenset[str]
    drop_attributes: frozenset[str]
    # attributes key -> kept attributes (filled while serializing)
    filtered: dict[int, Mapping[str, Any]] = field(default_factory=dict)


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
            return EntityInfo.build(entity_id)
        device = self._dev_reg.async_get(entry.device_id) if entry.device_id else None
        area_id = entry.area_id or (device.area_id if device else None)
        area = self._area_reg.async_get_area(area_id) if area_id else None
        floor = self._floor_reg.async_get_floor(area.floor_id) if area and area.floor_id else None
        return EntityInfo.build(
            entity_id,
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

    async def async_prepare(self, events: Columns) -> None:
        """Fill the caches a batch needs (entities invalidated since capture, user names)."""
        entities = self.entities
        for entity_id in set(events.entity_id):
            if entity_id is not None and entity_id not in entities:
                self.entity_info(entity_id)
        missing_users = {u for u in set(events.user_id) if u is not None and u not in self.users}
        for user_id in missing_users:
            user = await self.hass.auth.async_get_user(user_id)
            self.users[user_id] = user.name if user else None


def _numeric(state: str) -> float | None:
    if not state or state[0] not in _NUMERIC_START:
        return None  # most text states, without the cost of an exception
    try:
        value = float(state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _attributes(key: int, ctx: BatchContext) -> Mapping[str, Any]:
    """The kept attributes, filtered once per distinct attributes object in a batch."""
    kept = ctx.filtered.get(key)
    if kept is None:
        attrs = ctx.attributes[key]
        if ctx.keep_attributes:
            kept = {k: attrs[k] for k in ctx.keep_attributes if k in attrs}
        else:
            drop = ctx.drop_attributes | COLUMN_ATTRIBUTES
            kept = {k: v for k, v in attrs.items() if k not in drop}
        ctx.filtered[key] = kept
    return kept


def make_record(cols: Columns, i: int, ctx: BatchContext) -> dict[str, Any]:
    """Event i as the wire contract's EVENT."""
    context_id = cols.context_id[i]
    record: dict[str, Any] = {
        "time_fired": datetime.fromtimestamp(cols.fired[i], UTC),
        "event_type": cols.event_type[i],
        "origin": cols.origin[i],
        "context_id": context_id,
    }
    user_id = cols.user_id[i]
    parent_id = cols.parent_id[i]
    if user_id is not None:
        record["context_user_id"] = user_id
    if parent_id is not None:
        record["context_parent_id"] = parent_id
    entity_id = cols.entity_id[i]
    value = cols.value[i]
    info: EntityInfo | None = None
    if entity_id is not None:
        info = ctx.entities.get(entity_id) or EntityInfo.build(entity_id)
        record["entity_id"] = entity_id
        record.update(info.fields)
        old_state = record["old_state"] = cols.old_state[i]
        record["state"] = value
        if value is not None:
            attrs = ctx.attributes[cols.attrs_key[i]]  # type: ignore[index]
            new_changed: float = cols.new_changed[i]  # type: ignore[assignment]
            record["numeric_value"] = _numeric(value)
            record["last_changed"] = datetime.fromtimestamp(new_changed, UTC)
            if old_state is not None and old_state != value:
                record["prev_state_seconds"] = new_changed - cols.old_changed[i]  # type: ignore[operator]
            record["attributes"] = _attributes(cols.attrs_key[i], ctx)  # type: ignore[arg-type]
            record["device_class"] = attrs.get(ATTR_DEVICE_CLASS) or info.device_class
            record["state_class"] = attrs.get(ATTR_STATE_CLASS)
            record["unit"] = attrs.get(ATTR_UNIT_OF_MEASUREMENT) or info.unit
            record["friendly_name"] = attrs.get(ATTR_FRIENDLY_NAME) or info.name
    elif value:
        record["data"] = value
    _cause(record, context_id, parent_id, user_id, info, ctx)
    if ctx.snapshot:
        record.update(ctx.snapshot)
    return record


def _cause(  # noqa: PLR0917 - hot path: plain positional values, no wrapper objects
    record: dict[str, Any],
    context_id: str,
    parent_id: str | None,
    user_id: str | None,
    info: EntityInfo | None,
    ctx: BatchContext,
) -> None:
    if user_id is not None:
        record["cause"] = "user"
        record["cause_name"] = ctx.users.get(user_id)
        record["cause_id"] = user_id
        return
    origin = ctx.causes.get(context_id) or (ctx.causes.get(parent_id) if parent_id else None)
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
