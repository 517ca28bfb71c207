"""System health: reachability probe, add-on version, backlog."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, get_system_health_info

from custom_components.homeiq.const import DOMAIN


async def test_system_health(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry, addon_server: Any
) -> None:
    """Reachable, with the add-on's versions and the backlog; then unreachable."""
    assert await async_setup_component(hass, "system_health", {})
    await hass.async_block_till_done()
    info = await get_system_health_info(hass, DOMAIN)
    health = homeiq_entry.runtime_data.coordinator.data.addon.health
    assert await info.pop("addon_reachable") == "ok"
    assert info == {
        "addon_version": health.version,
        "api_version": 1,
        "backlog": 0,
    }

    await hass.async_add_executor_job(addon_server.stop)
    info = await get_system_health_info(hass, DOMAIN)
    assert await info["addon_reachable"] == {"type": "failed", "error": "unreachable"}


async def test_system_health_without_entry(hass: HomeAssistant) -> None:
    """Nothing loaded: nothing to report."""
    assert await async_setup_component(hass, "system_health", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert await get_system_health_info(hass, DOMAIN) == {}
