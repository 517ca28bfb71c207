"""System health: can Home Assistant reach the add-on, which version, how much waits."""

from __future__ import annotations

from typing import Any

from homeassistant.components import system_health
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN
from .coordinator import HomeIQConfigEntry


@callback
def async_register(hass: HomeAssistant, register: system_health.SystemHealthRegistration) -> None:
    """Register the system health callback."""
    register.async_register_info(system_health_info)


async def system_health_info(hass: HomeAssistant) -> dict[str, Any]:
    """Report on the first loaded entry (HomeIQ talks to one add-on)."""
    entries: list[HomeIQConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
    if not entries:
        return {}
    runtime = entries[0].runtime_data
    addon = runtime.coordinator.data.addon
    return {
        # The minimal health answer needs no token: a plain reachability probe.
        "addon_reachable": system_health.async_check_can_reach_url(
            hass, f"{runtime.client.url}/api/v1/health?minimal=1"
        ),
        "addon_version": addon.health.version if addon is not None else "unknown",
        "api_version": addon.health.api_version if addon is not None else "unknown",
        "backlog": runtime.pipeline.backlog_events,
    }
