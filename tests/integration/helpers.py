"""Registry fixtures shared by the capture and contract tests."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry


async def registries(hass: HomeAssistant) -> dict[str, Any]:
    """An area on a floor, a label, and a device in that area with a labeled power sensor."""
    other = MockConfigEntry(domain="test")
    other.add_to_hass(hass)
    floor = fr.async_get(hass).async_create("Ground")
    area = ar.async_get(hass).async_create("Kitchen", floor_id=floor.floor_id)
    label = lr.async_get(hass).async_create("Energy")
    dev_reg = dr.async_get(hass)
    device = dev_reg.async_get_or_create(
        config_entry_id=other.entry_id,
        identifiers={("test", "plug1")},
        name="Plug",
        manufacturer="Acme",
        model="P1",
    )
    dev_reg.async_update_device(device.id, area_id=area.id)
    ent_reg = er.async_get(hass)
    entity = ent_reg.async_get_or_create(
        "sensor",
        "test",
        "plug1-power",
        suggested_object_id="plug_power",
        device_id=device.id,
        original_device_class="power",
        unit_of_measurement="W",
    )
    ent_reg.async_update_entity(entity.entity_id, labels={label.label_id})
    return {"floor": floor, "area": area, "label": label, "device": device}
