"""Connectivity of the HomeIQ add-on."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import HomeIQConfigEntry
from .entity import HomeIQEntity

# The coordinator centralizes the updates.
PARALLEL_UPDATES = 0

CONNECTIVITY = BinarySensorEntityDescription(
    key="addon_connected",
    translation_key="addon_connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeIQConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the add-on connectivity sensor."""
    async_add_entities([HomeIQConnectivitySensor(entry.runtime_data.coordinator, CONNECTIVITY)])


class HomeIQConnectivitySensor(HomeIQEntity, BinarySensorEntity):
    """On while the add-on answers; stays available so "off" is visible."""

    @property
    def is_on(self) -> bool:
        """Return whether the last refresh reached the add-on."""
        return self.coordinator.data.addon_available
