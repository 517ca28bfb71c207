"""HomeIQ actions: flush, query, run_retention, create_backup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util
import msgspec
import voluptuous as vol

from .api import HomeIQAuthError, HomeIQError, HomeIQResponseError
from .const import DOMAIN
from .coordinator import HomeIQConfigEntry

SERVICE_FLUSH = "flush"
SERVICE_QUERY = "query"
SERVICE_RUN_RETENTION = "run_retention"
SERVICE_CREATE_BACKUP = "create_backup"

ATTR_CONFIG_ENTRY_ID = "config_entry_id"
ATTR_TYPE = "type"
ATTR_ENTITY_ID = "entity_id"
ATTR_EVENT_TYPE = "event_type"
ATTR_PERIOD = "period"
ATTR_START = "start"
ATTR_END = "end"
ATTR_LIMIT = "limit"
ATTR_RESOLUTION = "resolution"
ATTR_DRY_RUN = "dry_run"

QUERY_TYPES = ["events", "history", "stats"]
# The add-on's stats periods; events and history use the same ones as "the last ...".
PERIODS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
RESOLUTIONS = ["raw", "hour", "day"]
# How long `flush` waits for the add-on to acknowledge what it shipped.
FLUSH_TIMEOUT = 30

ENTRY_SCHEMA = vol.Schema({vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})
QUERY_SCHEMA = ENTRY_SCHEMA.extend(
    {
        vol.Required(ATTR_TYPE): vol.In(QUERY_TYPES),
        vol.Optional(ATTR_ENTITY_ID): cv.entity_id,
        vol.Optional(ATTR_EVENT_TYPE): cv.string,
        vol.Optional(ATTR_PERIOD, default="24h"): vol.In(list(PERIODS)),
        vol.Optional(ATTR_START): cv.datetime,
        vol.Optional(ATTR_END): cv.datetime,
        vol.Optional(ATTR_LIMIT, default=100): vol.All(vol.Coerce(int), vol.Range(1, 1000)),
        vol.Optional(ATTR_RESOLUTION, default="raw"): vol.In(RESOLUTIONS),
    }
)
RETENTION_SCHEMA = ENTRY_SCHEMA.extend({vol.Optional(ATTR_DRY_RUN, default=False): cv.boolean})


def _entry(call: ServiceCall) -> HomeIQConfigEntry:
    """The entry named in the call, or the only loaded one."""
    hass = call.hass
    if entry_id := call.data.get(ATTR_CONFIG_ENTRY_ID):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_found",
                translation_placeholders={"entry_id": entry_id},
            )
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"title": entry.title},
            )
        return entry
    entries = hass.config_entries.async_loaded_entries(DOMAIN)
    if len(entries) != 1:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_required" if entries else "no_loaded_entry",
        )
    return entries[0]


async def _call_addon[T](request: Callable[[], Awaitable[T]]) -> T:
    """Run one add-on request; turn its failures into translated errors."""
    try:
        return await request()
    except HomeIQAuthError as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="auth_failed") from err
    except HomeIQResponseError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="addon_rejected",
            translation_placeholders={"message": str(err)},
        ) from err
    except HomeIQError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="addon_unreachable",
            translation_placeholders={"error": str(err)},
        ) from err


async def _async_flush(call: ServiceCall) -> None:
    """Ship everything captured so far now, and wait (bounded) until it is acknowledged."""
    runtime = _entry(call).runtime_data
    pipeline = runtime.pipeline
    # Spool first: whatever happens next, the buffer is safe on disk.
    await pipeline.async_flush()
    await _call_addon(runtime.client.async_health)
    try:
        async with asyncio.timeout(FLUSH_TIMEOUT):
            await pipeline.async_wait_delivered()
    except TimeoutError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="flush_timeout",
            translation_placeholders={
                "backlog": str(pipeline.backlog_events),
                "timeout": str(FLUSH_TIMEOUT),
            },
        ) from err


def _window(data: dict[str, Any]) -> tuple[datetime, datetime]:
    """The query's start and end: explicit times, else the last `period`."""
    end = dt_util.as_utc(data[ATTR_END]) if ATTR_END in data else dt_util.utcnow()
    if ATTR_START in data:
        start = dt_util.as_utc(data[ATTR_START])
    else:
        start = end - PERIODS[data[ATTR_PERIOD]]
    if start >= end:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_window",
            translation_placeholders={"start": start.isoformat(), "end": end.isoformat()},
        )
    return start, end


async def _async_query(call: ServiceCall) -> ServiceResponse:
    """Answer events, history or stats from the add-on's store."""
    entry = _entry(call)
    client = entry.runtime_data.client
    data = call.data
    kind = data[ATTR_TYPE]
    if kind == "stats":
        stats = await _call_addon(lambda: client.async_stats(data[ATTR_PERIOD]))
        result: dict[str, Any] = msgspec.to_builtins(stats)
        return result
    if kind == "history" and ATTR_ENTITY_ID not in data:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="history_needs_entity"
        )
    start, end = _window(dict(data))
    if kind == "history":
        return await _call_addon(
            lambda: client.async_history(
                data[ATTR_ENTITY_ID],
                start=start.isoformat(),
                end=end.isoformat(),
                limit=data[ATTR_LIMIT],
                resolution=data[ATTR_RESOLUTION],
            )
        )
    return await _call_addon(
        lambda: client.async_events(
            entity_id=data.get(ATTR_ENTITY_ID),
            event_type=data.get(ATTR_EVENT_TYPE),
            start=start.isoformat(),
            end=end.isoformat(),
            limit=data[ATTR_LIMIT],
        )
    )


async def _async_run_retention(call: ServiceCall) -> ServiceResponse:
    """Apply the retention policies now (or only report with dry_run)."""
    client = _entry(call).runtime_data.client
    return await _call_addon(lambda: client.async_run_retention(call.data[ATTR_DRY_RUN]))


async def _async_create_backup(call: ServiceCall) -> ServiceResponse:
    """Have the add-on write a backup of its store."""
    client = _entry(call).runtime_data.client
    return await _call_addon(client.async_create_backup)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the HomeIQ actions (once, from async_setup)."""
    hass.services.async_register(DOMAIN, SERVICE_FLUSH, _async_flush, schema=ENTRY_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_QUERY,
        _async_query,
        schema=QUERY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_RUN_RETENTION,
        _async_run_retention,
        schema=RETENTION_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_CREATE_BACKUP,
        _async_create_backup,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
