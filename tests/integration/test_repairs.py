"""Each repair issue is raised by its condition and cleared when the condition ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
import os
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from helpers import FlakyProxy
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.translation import async_get_translations
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.homeiq import issues
from custom_components.homeiq.api import HomeIQClient
from custom_components.homeiq.const import (
    CAPTURE_EVENT_TYPES,
    CONF_CAPTURE_MODE,
    CONF_EVENT_TYPES,
    CONF_SPOOL_CAP_MB,
    DOMAIN,
)
from custom_components.homeiq.contract import API_VERSION

TEST_EVENT = "homeiq_test"
SMALL_SPOOL = {
    CONF_CAPTURE_MODE: CAPTURE_EVENT_TYPES,
    CONF_EVENT_TYPES: [TEST_EVENT],
    CONF_SPOOL_CAP_MB: 1,
}


async def _refresh(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()


async def _redeliver(hass: HomeAssistant, entry: MockConfigEntry, addon_server: Any) -> None:
    """Bring the add-on back and wait until the spool has been delivered."""
    await hass.async_add_executor_job(addon_server.start)
    async with asyncio.timeout(60):
        await entry.runtime_data.pipeline.async_wait_delivered()
    await _refresh(hass, entry)


async def _fill_spool(hass: HomeAssistant, entry: MockConfigEntry, target: int) -> None:
    """Spool incompressible ~16 kB events until `target` bytes are waiting (or dropped)."""
    pipeline = entry.runtime_data.pipeline
    while pipeline.spool_bytes < target and pipeline.dropped_total == 0:
        hass.bus.async_fire(TEST_EVENT, {"blob": os.urandom(8192).hex()})
        await hass.async_block_till_done()
        await pipeline.async_flush()


async def test_addon_unreachable_after_15_minutes(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    addon_server: Any,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Down for a moment: no issue. Down for over 15 minutes: issue. Back: cleared."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    freezer.move_to("2026-12-01T20:38:06+00:00")
    await hass.async_add_executor_job(addon_server.stop)
    await _refresh(hass, homeiq_entry)
    assert issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_UNREACHABLE) is None

    freezer.tick(timedelta(minutes=14))
    async_fire_time_changed(hass)
    await _refresh(hass, homeiq_entry)
    assert issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_UNREACHABLE) is None

    freezer.tick(timedelta(minutes=2))
    async_fire_time_changed(hass)
    await _refresh(hass, homeiq_entry)
    issue = issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_UNREACHABLE)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["url"] == addon_server.url
    # Read by people: the local time in Home Assistant's time zone, not ISO 8601 in UTC.
    assert issue.translation_placeholders["since"] == "21:38 on 2026-12-01 (CET)"

    await hass.async_add_executor_job(addon_server.start)
    await _refresh(hass, homeiq_entry)
    assert issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_UNREACHABLE) is None


async def test_addon_incompatible(
    hass: HomeAssistant,
    addon_server: Any,
    make_entry: Callable[..., Awaitable[MockConfigEntry]],
    issue_registry: ir.IssueRegistry,
) -> None:
    """An add-on speaking another API version raises the issue; a matching one clears it."""
    # A real HTTP hop in front of the real add-on that reports API version 99.
    proxy = FlakyProxy(addon_server.url, "old_api")
    await proxy.start()
    try:
        entry = await make_entry(proxy.url, addon_server.token, unique_id="test-instance")
        await _refresh(hass, entry)
        issue = issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_INCOMPATIBLE)
        assert issue is not None
        assert issue.severity is ir.IssueSeverity.ERROR
        assert issue.translation_placeholders == {
            "addon_version": entry.runtime_data.coordinator.data.addon.health.version,
            "api_version": "99",
            "expected_api_version": str(API_VERSION),
        }

        proxy.mode = "pass_through"  # the add-on was updated: it speaks our version again
        await _refresh(hass, entry)
        assert issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_INCOMPATIBLE) is None
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await proxy.stop()


async def test_addon_incompatible_and_unreadable(
    hass: HomeAssistant,
    addon_server: Any,
    make_entry: Callable[..., Awaitable[MockConfigEntry]],
    issue_registry: ir.IssueRegistry,
) -> None:
    """An add-on whose answers another API version reshaped: the same issue, status error."""
    version = (
        await HomeIQClient(
            async_get_clientsession(hass), addon_server.url, addon_server.token
        ).async_health()
    ).version
    proxy = FlakyProxy(addon_server.url, "new_api")
    await proxy.start()
    try:
        entry = await make_entry(proxy.url, addon_server.token, unique_id="test-instance")
        await _refresh(hass, entry)
        issue = issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_INCOMPATIBLE)
        assert issue is not None
        assert issue.translation_placeholders == {
            "addon_version": version,
            "api_version": "2",
            "expected_api_version": str(API_VERSION),
        }
        assert hass.states.get("sensor.homeiq_status").state == "error"
        assert hass.states.get("sensor.homeiq_events_stored").state == "unavailable"

        proxy.mode = "pass_through"
        await _refresh(hass, entry)
        assert issue_registry.async_get_issue(DOMAIN, issues.ISSUE_ADDON_INCOMPATIBLE) is None
        assert hass.states.get("sensor.homeiq_status").state == "ok"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await proxy.stop()


@pytest.mark.parametrize("homeiq_options", [SMALL_SPOOL])
async def test_spool_near_full(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    addon_server: Any,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Above 80% of the cap: warning; delivered: cleared. Nothing dropped on the way."""
    await hass.async_add_executor_job(addon_server.stop)
    pipeline = homeiq_entry.runtime_data.pipeline
    await _fill_spool(hass, homeiq_entry, int(0.82 * pipeline.spool_cap_bytes))
    await _refresh(hass, homeiq_entry)
    issue = issue_registry.async_get_issue(DOMAIN, issues.ISSUE_SPOOL_NEAR_FULL)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["spool_cap_mb"] == "1"
    assert pipeline.dropped_total == 0
    assert issue_registry.async_get_issue(DOMAIN, "spool_full") is None
    # What the user reads: at the cap the oldest events make room for new ones.
    texts = await async_get_translations(hass, "en", "issues", [DOMAIN])
    description = texts[f"component.{DOMAIN}.issues.spool_near_full.description"].format(
        **issue.translation_placeholders
    )
    assert "the oldest events are dropped" in description
    assert "new events are dropped" not in description

    await _redeliver(hass, homeiq_entry, addon_server)
    assert issue_registry.async_get_issue(DOMAIN, issues.ISSUE_SPOOL_NEAR_FULL) is None


@pytest.mark.parametrize("homeiq_options", [SMALL_SPOOL])
async def test_events_dropped(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    addon_server: Any,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Past the cap the pipeline drops and raises; once the rest is delivered it clears."""
    await hass.async_add_executor_job(addon_server.stop)
    pipeline = homeiq_entry.runtime_data.pipeline
    async with asyncio.timeout(60):  # a pipeline that never drops fails here, not hangs
        while pipeline.dropped_total == 0:
            await _fill_spool(hass, homeiq_entry, pipeline.spool_bytes + 1)
    await _refresh(hass, homeiq_entry)
    issue = issue_registry.async_get_issue(DOMAIN, "spool_full")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["dropped"] == str(pipeline.dropped_total)
    assert hass.states.get("sensor.homeiq_dropped_events").state == str(pipeline.dropped_total)

    # Still down: the issue stays, whatever the refreshes.
    await _refresh(hass, homeiq_entry)
    assert issue_registry.async_get_issue(DOMAIN, "spool_full") is not None

    await _redeliver(hass, homeiq_entry, addon_server)
    assert issue_registry.async_get_issue(DOMAIN, "spool_full") is None


@pytest.mark.parametrize("homeiq_options", [SMALL_SPOOL])
async def test_dropped_count_survives_a_reload(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    addon_server: Any,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The dropped count is kept on disk: after a reload the sensor and the issue still show it."""
    await hass.async_add_executor_job(addon_server.stop)
    pipeline = homeiq_entry.runtime_data.pipeline
    async with asyncio.timeout(60):
        while pipeline.dropped_total == 0:
            await _fill_spool(hass, homeiq_entry, pipeline.spool_bytes + 1)
    dropped = pipeline.dropped_total

    assert await hass.config_entries.async_reload(homeiq_entry.entry_id)
    await hass.async_block_till_done()
    assert homeiq_entry.runtime_data.pipeline is not pipeline
    await _refresh(hass, homeiq_entry)
    assert hass.states.get("sensor.homeiq_dropped_events").state == str(dropped)
    issue = issue_registry.async_get_issue(DOMAIN, "spool_full")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["dropped"] == str(dropped)

    # Later drops add to it.
    pipeline = homeiq_entry.runtime_data.pipeline
    async with asyncio.timeout(60):
        while pipeline.dropped_total == dropped:
            hass.bus.async_fire(TEST_EVENT, {"blob": os.urandom(8192).hex()})
            await hass.async_block_till_done()
            await pipeline.async_flush()
    await _refresh(hass, homeiq_entry)
    assert hass.states.get("sensor.homeiq_dropped_events").state == str(pipeline.dropped_total)
