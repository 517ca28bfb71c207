"""Base entity: every HomeIQ entity belongs to one service device per entry."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import HomeIQCoordinator


class HomeIQEntity(CoordinatorEntity[HomeIQCoordinator]):
    """Defines a HomeIQ entity."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: HomeIQCoordinator, description: EntityDescription) -> None:
        """Attach the entity to the HomeIQ service device."""
        super().__init__(coordinator)
        self.entity_description = description
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.unique_id or entry.entry_id}_{description.key}"
        addon = coordinator.data.addon
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="HomeIQ",
            model="HomeIQ add-on",
            name="HomeIQ",
            sw_version=addon.health.version if addon is not None else None,
        )
