"""Fixtures for the integration's tests: real hass, real add-on process, real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.homeiq.const import (
    CAPTURE_EVENT_TYPES,
    CONF_CAPTURE_MODE,
    CONF_EVENT_TYPES,
    CONF_FLUSH_INTERVAL,
    CONF_TOKEN,
    CONF_URL,
    DEFAULT_OPTIONS,
    DOMAIN,
)

# UI tests: the event type the `homeiq_entry` captures (and nothing else).
TEST_EVENT = "homeiq_test"


@pytest.fixture(autouse=True)
def loopback_sockets(socket_enabled: None) -> None:
    """The add-on is a real process on 127.0.0.1 (pytest-socket still refuses other hosts)."""


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Every test here loads custom_components/homeiq."""


@pytest.fixture(autouse=True)
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config dir per test, so each test's spool starts empty and stays out of site-packages."""
    hass.config.config_dir = str(tmp_path)
    return tmp_path


@pytest.fixture
def make_entry(hass: HomeAssistant) -> Callable[..., Awaitable[MockConfigEntry]]:
    """Add (and by default set up) a HomeIQ entry pointing at `url` with `token`."""

    async def _make(
        url: str, token: str, *, setup: bool = True, unique_id: str = "addon", **options: Any
    ) -> MockConfigEntry:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="HomeIQ",
            unique_id=unique_id,
            data={CONF_URL: url, CONF_TOKEN: token},
            options={**DEFAULT_OPTIONS, CONF_FLUSH_INTERVAL: 60, **options},
        )
        entry.add_to_hass(hass)
        if setup:
            assert await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
        return entry

    return _make


@pytest.fixture
def homeiq_options() -> dict[str, Any]:
    """UI tests: capture only the test's own event type, so counts are exact."""
    return {CONF_CAPTURE_MODE: CAPTURE_EVENT_TYPES, CONF_EVENT_TYPES: [TEST_EVENT]}


@pytest.fixture
async def homeiq_entry(
    hass: HomeAssistant,
    addon_server: Any,
    make_entry: Callable[..., Awaitable[MockConfigEntry]],
    homeiq_options: dict[str, Any],
) -> AsyncGenerator[MockConfigEntry]:
    """UI tests: an entry set up against the real add-on, its first refresh done."""
    entry = await make_entry(
        addon_server.url, addon_server.token, unique_id="test-instance", **homeiq_options
    )
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    yield entry
    if entry.state is ConfigEntryState.LOADED:
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


@pytest.fixture
def deliver_events(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry
) -> Callable[[int], Awaitable[None]]:
    """Fire `n` test events, wait until the add-on acknowledged them, refresh the sensors."""

    async def deliver(n: int) -> None:
        for i in range(n):
            hass.bus.async_fire(TEST_EVENT, {"n": i})
        await hass.async_block_till_done()
        async with asyncio.timeout(30):
            await homeiq_entry.runtime_data.pipeline.async_wait_delivered()
        await homeiq_entry.runtime_data.coordinator.async_refresh()
        await hass.async_block_till_done()

    return deliver
