"""Diagnostics: options, pipeline counters, spool state and the add-on's health."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
import msgspec

from .const import (
    CONF_EXCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITIES,
    CONF_TOKEN,
    CONF_URL,
    CONF_WEATHER_ENTITY,
)
from .coordinator import HomeIQConfigEntry

# Credentials, where the add-on lives, and anything naming people or their things.
TO_REDACT = {
    CONF_TOKEN,
    CONF_URL,
    CONF_INCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITIES,
    CONF_WEATHER_ENTITY,
    "unique_id",
    "instance_id",
    "hostname",
    "host",
    "last_error",
    "top_entities",
    "entity_id",
    "friendly_name",
    "cause_name",
    "cause_id",
    "context_user_id",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HomeIQConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    runtime = entry.runtime_data
    counters = runtime.pipeline.counters()
    state = runtime.coordinator.data
    addon = state.addon
    cap = counters.spool_cap_bytes
    return async_redact_data(
        {
            "entry": {
                "title": entry.title,
                "unique_id": entry.unique_id,
                "data": dict(entry.data),
                "options": dict(entry.options),
            },
            "pipeline": asdict(counters),
            "spool": {
                "backlog_events": counters.backlog_events,
                "bytes": counters.spool_bytes,
                "cap_bytes": cap,
                "used_percent": round(100 * counters.spool_bytes / cap, 1) if cap else None,
            },
            "addon": {
                "available": state.addon_available,
                "unreachable_since": state.unreachable_since,
                "health": msgspec.to_builtins(addon.health) if addon is not None else {},
                "stats": msgspec.to_builtins(addon.stats) if addon is not None else {},
            },
        },
        TO_REDACT,
    )
