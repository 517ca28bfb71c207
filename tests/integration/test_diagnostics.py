"""Diagnostics: a snapshot of what a user would attach to a bug report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

# Values that change from run to run (clock, timing, file sizes, ports); the snapshot
# keeps their presence and type, not their value.
VOLATILE = {
    "generated_at",
    "uptime_seconds",
    "db_size_bytes",
    "last_ingest",
    "oldest_event",
    "newest_event",
    "last_delivery",
    "delivery_latency_ms",
    "events_per_minute",
    "events_per_second",
    "ingest_latency_ms",
    "trends",
    "version",
    "spool_bytes",
    "bytes",
    "used_percent",
    "schema_version",
}


def _stable(value: Any, key: str | None = None) -> Any:
    if key in VOLATILE and value is not None:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        return {k: _stable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    homeiq_entry: MockConfigEntry,
    deliver_events: Callable[[int], Awaitable[None]],
    snapshot: SnapshotAssertion,
) -> None:
    """Options, counters, spool and add-on health; token, URL and personal data redacted."""
    await deliver_events(3)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, homeiq_entry)
    text = str(diagnostics)
    assert homeiq_entry.data["token"] not in text
    assert homeiq_entry.data["url"] not in text
    assert _stable(diagnostics) == snapshot
