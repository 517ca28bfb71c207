"""The HomeIQ actions against the real add-on: what they return and how they fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.homeiq import services
from custom_components.homeiq.const import CONF_EVENT_TYPES, CONF_EXCLUDE_ENTITIES, DOMAIN

TEST_EVENT = "homeiq_test"


@pytest.fixture
def homeiq_options(homeiq_options: dict[str, Any]) -> dict[str, Any]:
    """Capture state changes too (not HomeIQ's own), so history has something to answer."""
    return {
        **homeiq_options,
        CONF_EVENT_TYPES: [TEST_EVENT, "state_changed"],
        CONF_EXCLUDE_ENTITIES: ["*homeiq_*"],
    }


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any] | None = None) -> Any:
    return await hass.services.async_call(
        DOMAIN,
        service,
        data or {},
        blocking=True,
        return_response=service != "flush",
    )


async def test_flush_ships_now(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry, addon_server: Any
) -> None:
    """Events wait for the flush interval (60 s here) unless flushed."""
    for i in range(2):
        hass.bus.async_fire(TEST_EVENT, {"n": i})
    await hass.async_block_till_done()
    assert await hass.async_add_executor_job(addon_server.row_count) == 0
    await _call(hass, "flush", {"config_entry_id": homeiq_entry.entry_id})
    assert await hass.async_add_executor_job(addon_server.row_count) == 2
    assert homeiq_entry.runtime_data.pipeline.backlog_events == 0


async def test_flush_with_addon_down_keeps_events_spooled(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry, addon_server: Any
) -> None:
    """Flush fails with a translated error; the events are safe in the spool."""
    await hass.async_add_executor_job(addon_server.stop)
    hass.bus.async_fire(TEST_EVENT, {})
    await hass.async_block_till_done()
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "flush")
    assert err.value.translation_key == "addon_unreachable"
    assert homeiq_entry.runtime_data.pipeline.backlog_events == 1


async def test_flush_times_out(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flush the add-on does not acknowledge in time says how much is still waiting."""
    monkeypatch.setattr(services, "FLUSH_TIMEOUT", 0)
    # Three batches need three round trips: more than no time at all.
    for i in range(2500):
        hass.bus.async_fire(TEST_EVENT, {"n": i})
    await hass.async_block_till_done()
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "flush")
    assert err.value.translation_key == "flush_timeout"
    assert int(err.value.translation_placeholders["backlog"]) > 0


async def test_query_events_history_and_stats(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    deliver_events: Callable[[int], Awaitable[None]],
) -> None:
    """Each query type answers from the add-on's store."""
    hass.states.async_set("sensor.outside_temperature", "3.5")
    await deliver_events(2)

    events = await _call(hass, "query", {"type": "events", "event_type": TEST_EVENT})
    assert [event["event_type"] for event in events["events"]] == [TEST_EVENT] * 2

    history = await _call(
        hass,
        "query",
        {"type": "history", "entity_id": "sensor.outside_temperature", "period": "1h"},
    )
    assert history["entity_id"] == "sensor.outside_temperature"
    assert [point["state"] for point in history["points"]] == ["3.5"]

    start = dt_util.utcnow() - timedelta(days=1)
    window = await _call(
        hass,
        "query",
        {
            "type": "events",
            "entity_id": "sensor.outside_temperature",
            "start": start,
            "end": dt_util.utcnow() + timedelta(minutes=1),
            "limit": 5,
        },
    )
    assert [event["state"] for event in window["events"]] == ["3.5"]

    stats = await _call(hass, "query", {"type": "stats", "period": "15m"})
    assert stats["period"] == "15m"
    assert stats["metrics"]["by_event_type"][TEST_EVENT] == 2


async def test_query_validation(hass: HomeAssistant, homeiq_entry: MockConfigEntry) -> None:
    """Wrong input is refused before the add-on is asked."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "query", {"type": "history"})
    assert err.value.translation_key == "history_needs_entity"

    now = dt_util.utcnow()
    with pytest.raises(ServiceValidationError) as err:
        await _call(
            hass, "query", {"type": "events", "start": now, "end": now - timedelta(hours=1)}
        )
    assert err.value.translation_key == "invalid_window"


async def test_query_rejected_by_addon(
    hass: HomeAssistant,
    addon_server: Any,
    make_entry: Callable[..., Awaitable[MockConfigEntry]],
) -> None:
    """What the add-on refuses (here: a URL with a wrong path) comes back named."""
    await make_entry(f"{addon_server.url}/wrong", addon_server.token)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "query", {"type": "stats"})
    assert err.value.translation_key == "addon_rejected"
    assert err.value.translation_placeholders["message"]


async def test_actions_with_addon_down(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry, addon_server: Any
) -> None:
    """Every add-on action fails with a translated error while it is down."""
    await hass.async_add_executor_job(addon_server.stop)
    for service, data in (
        ("query", {"type": "stats"}),
        ("run_retention", {}),
        ("create_backup", {}),
    ):
        with pytest.raises(HomeAssistantError) as err:
            await _call(hass, service, data)
        assert err.value.translation_key == "addon_unreachable", service


async def test_run_retention_and_backup(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    deliver_events: Callable[[int], Awaitable[None]],
    addon_server: Any,
) -> None:
    """Retention (dry run first) and a backup answer with the add-on's report."""
    await deliver_events(3)
    report = await _call(hass, "run_retention", {"dry_run": True})
    assert isinstance(report, dict)
    assert await hass.async_add_executor_job(addon_server.row_count) == 3
    report = await _call(hass, "run_retention")
    assert isinstance(report, dict)

    backup = await _call(hass, "create_backup")
    assert isinstance(backup, dict)
    assert backup


async def test_refused_token(
    hass: HomeAssistant,
    addon_server: Any,
    make_entry: Callable[..., Awaitable[MockConfigEntry]],
) -> None:
    """A token the add-on refuses gives a translated error, not a stack trace."""
    await make_entry(addon_server.url, "not-the-token")
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "create_backup")
    assert err.value.translation_key == "auth_failed"


async def test_entry_selection(
    hass: HomeAssistant,
    addon_server: Any,
    make_entry: Callable[..., Awaitable[MockConfigEntry]],
) -> None:
    """Which entry an action uses, and the errors when that is unclear."""
    first = await make_entry(addon_server.url, addon_server.token, unique_id="first")

    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "flush", {"config_entry_id": "nope"})
    assert err.value.translation_key == "entry_not_found"

    second = await make_entry(addon_server.url, addon_server.token, unique_id="second")
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "flush")
    assert err.value.translation_key == "entry_required"
    await _call(hass, "flush", {"config_entry_id": second.entry_id})

    assert await hass.config_entries.async_unload(second.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "flush", {"config_entry_id": second.entry_id})
    assert err.value.translation_key == "entry_not_loaded"

    assert await hass.config_entries.async_unload(first.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "flush")
    assert err.value.translation_key == "no_loaded_entry"
