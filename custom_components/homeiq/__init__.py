"""HomeIQ: capture every Home Assistant event, enrich it and ship it to the HomeIQ add-on."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .api import HomeIQClient
from .const import CONF_TOKEN, CONF_URL, DOMAIN
from .coordinator import HomeIQConfigEntry, HomeIQCoordinator, HomeIQData
from .pipeline import Pipeline
from .services import async_setup_services
from .spool import Spool

__all__ = ["HomeIQConfigEntry", "HomeIQData"]

PLATFORMS = [Platform.BINARY_SENSOR, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's services once, whatever the number of entries."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HomeIQConfigEntry) -> bool:
    """Start capturing at once; the add-on may be unreachable, setup never waits for it."""
    client = HomeIQClient(
        async_get_clientsession(hass), entry.data[CONF_URL], entry.data[CONF_TOKEN]
    )
    pipeline = Pipeline(hass, entry, client)
    await pipeline.async_start()
    coordinator = HomeIQCoordinator(hass, entry, client, pipeline)
    entry.runtime_data = HomeIQData(client=client, pipeline=pipeline, coordinator=coordinator)
    coordinator.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_entry_updated(hass: HomeAssistant, entry: HomeIQConfigEntry) -> None:
    """The one place that decides what a changed entry needs.

    A new URL or token (reauth, reconfigure, a rediscovered add-on) reloads the entry;
    new options are applied to the running pipeline, without a reload.
    """
    client = entry.runtime_data.client
    if client.url != entry.data[CONF_URL].rstrip("/") or not client.uses_token(
        entry.data[CONF_TOKEN]
    ):
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    entry.runtime_data.pipeline.apply_options(entry.options)


async def async_unload_entry(hass: HomeAssistant, entry: HomeIQConfigEntry) -> bool:
    """Stop capture and put whatever is still in memory into the spool."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.pipeline.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: HomeIQConfigEntry) -> None:
    """Delete the entry's spool (nothing will ever ship it) and its dropped count."""
    await Spool(hass, entry.entry_id).async_remove()
