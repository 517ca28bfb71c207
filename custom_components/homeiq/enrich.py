"""Enrichment facts: registry facts cached per entity, user names, per-batch snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
)


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
    # The wire keys these facts become (wire.py serializes them once per entity).
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

    async def async_prepare_users(self, user_ids: set[str | None]) -> None:
        """Look up the names of users not seen before (the batch's `cause_name`)."""
        for user_id in user_ids:
            if user_id is not None and user_id not in self.users:
                user = await self.hass.auth.async_get_user(user_id)
                self.users[user_id] = user.name if user else None


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
