"""The HomeIQ entities against the real add-on: states, attributes, availability."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import json
from pathlib import Path
from typing import Any
import urllib.error
import urllib.request

from homeassistant.components.sensor import ATTR_OPTIONS, ATTR_STATE_CLASS
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
)
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntryType
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.homeiq.const import DOMAIN

TEST_UNIQUE_ID = "test-instance"

PREFIX = "sensor.homeiq_"
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "dashboard.yaml"
CONNECTION = "binary_sensor.homeiq_connection"
# Pipeline counters: they stay available while the add-on is down.
LOCAL = ["event_rate", "events_captured", "backlog", "dropped_events"]
# Figures from the add-on's store: unavailable while it is down.
REMOTE = ["events_stored", "database_size"]
DISABLED = {"delivery_latency", "oldest_event"}


@pytest.fixture
def enable_all(entity_registry: er.EntityRegistry) -> None:
    """Enable the entities that are disabled by default before the entry sets up."""
    for key in DISABLED:
        entity_registry.async_get_or_create(
            "sensor",
            DOMAIN,
            f"{TEST_UNIQUE_ID}_{key}",
            suggested_object_id=f"homeiq_{key}",
            disabled_by=None,
        )


async def test_states_and_attributes(
    hass: HomeAssistant,
    enable_all: None,
    homeiq_entry: MockConfigEntry,
    deliver_events: Callable[[int], Awaitable[None]],
    addon_server: Any,
) -> None:
    """After three delivered events every sensor tells the truth about them."""
    await deliver_events(3)

    def state(object_id: str) -> Any:
        entity_state = hass.states.get(f"{PREFIX}{object_id}")
        assert entity_state is not None, object_id
        return entity_state

    captured = state("events_captured")
    assert captured.state == "3"
    assert captured.attributes[ATTR_STATE_CLASS] == "total_increasing"
    assert captured.attributes[ATTR_UNIT_OF_MEASUREMENT] == "events"
    assert float(state("event_rate").state) >= 0
    assert state("event_rate").attributes[ATTR_UNIT_OF_MEASUREMENT] == "events/min"
    assert state("backlog").state == "0"
    assert state("dropped_events").state == "0"
    assert state("events_stored").state == "3"
    assert state("events_stored").attributes[ATTR_STATE_CLASS] == "measurement"

    size = state("database_size")
    assert float(size.state) > 0
    assert size.attributes[ATTR_DEVICE_CLASS] == "data_size"
    assert size.attributes[ATTR_UNIT_OF_MEASUREMENT] == "MB"

    last = dt_util.parse_datetime(state("last_delivery").state)
    assert last is not None
    assert abs((dt_util.utcnow() - last).total_seconds()) < 300
    assert state("last_delivery").attributes[ATTR_DEVICE_CLASS] == "timestamp"

    latency = state("delivery_latency")
    assert float(latency.state) >= 0
    assert latency.attributes[ATTR_UNIT_OF_MEASUREMENT] == "ms"
    oldest = dt_util.parse_datetime(state("oldest_event").state)
    assert oldest is not None
    assert oldest <= last

    status = state("status")
    assert status.state == "ok"
    assert status.attributes[ATTR_DEVICE_CLASS] == "enum"
    assert status.attributes[ATTR_OPTIONS] == ["ok", "warning", "error", "unreachable"]
    assert status.attributes["alerts"] == []

    connection = hass.states.get(CONNECTION)
    assert connection is not None
    assert connection.state == STATE_ON
    assert connection.attributes[ATTR_DEVICE_CLASS] == "connectivity"
    assert addon_server.row_count() == 3


async def test_registry_and_device(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """One service device; noisy entities disabled, diagnostics categorised."""
    entries = er.async_entries_for_config_entry(entity_registry, homeiq_entry.entry_id)
    by_key = {entry.unique_id.removeprefix(f"{TEST_UNIQUE_ID}_"): entry for entry in entries}
    assert set(by_key) == {
        "events_per_minute",
        "events_captured",
        "backlog",
        "dropped_events",
        "last_delivery",
        "delivery_latency",
        "events_stored",
        "database_size",
        "oldest_event",
        "status",
        "addon_connected",
    }
    disabled = {key for key, entry in by_key.items() if entry.disabled_by is not None}
    assert disabled == DISABLED
    assert by_key["dropped_events"].entity_category is EntityCategory.DIAGNOSTIC
    assert by_key["addon_connected"].entity_category is EntityCategory.DIAGNOSTIC
    assert by_key["events_captured"].entity_category is None
    assert all(entry.translation_key == key for key, entry in by_key.items() if key != "status")
    assert hass.states.get(f"{PREFIX}delivery_latency") is None

    devices = dr.async_entries_for_config_entry(device_registry, homeiq_entry.entry_id)
    assert [device.identifiers for device in devices] == [{(DOMAIN, homeiq_entry.entry_id)}]
    device = devices[0]
    assert device.entry_type is DeviceEntryType.SERVICE
    assert device.name == "HomeIQ"
    health = homeiq_entry.runtime_data.coordinator.data.addon.health
    assert device.sw_version == health.version
    assert {entry.device_id for entry in entries} == {device.id}


async def test_availability_follows_the_addon(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    addon_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Add-on down: its figures go unavailable, the pipeline's keep counting; and back."""
    coordinator = homeiq_entry.runtime_data.coordinator
    pipeline = homeiq_entry.runtime_data.pipeline
    await hass.async_add_executor_job(addon_server.stop)
    await coordinator.async_refresh()
    hass.bus.async_fire("homeiq_test", {"while": "down"})
    await hass.async_block_till_done()
    await pipeline.async_flush()
    await coordinator.async_refresh()
    await hass.async_block_till_done()

    for object_id in REMOTE:
        assert hass.states.get(f"{PREFIX}{object_id}").state == STATE_UNAVAILABLE, object_id
    for object_id in LOCAL:
        assert hass.states.get(f"{PREFIX}{object_id}").state != STATE_UNAVAILABLE, object_id
    assert hass.states.get(f"{PREFIX}backlog").state == "1"
    assert hass.states.get(CONNECTION).state == STATE_OFF
    # The status says so itself, so an automation can trigger on it.
    assert hass.states.get(f"{PREFIX}status").state == "unreachable"
    assert caplog.text.count("is unreachable") == 1

    await hass.async_add_executor_job(addon_server.start)
    await pipeline.async_wait_delivered()
    await coordinator.async_refresh()
    await coordinator.async_refresh()
    await hass.async_block_till_done()

    for object_id in REMOTE:
        assert hass.states.get(f"{PREFIX}{object_id}").state != STATE_UNAVAILABLE, object_id
    assert hass.states.get(f"{PREFIX}backlog").state == "0"
    assert hass.states.get(f"{PREFIX}events_stored").state == "1"
    assert hass.states.get(CONNECTION).state == STATE_ON
    assert hass.states.get(f"{PREFIX}status").state == "ok"
    assert caplog.text.count("is reachable again") == 1
    assert caplog.text.count("is unreachable") == 1


async def test_placeholders_before_first_answer(
    hass: HomeAssistant, addon_server: Any, homeiq_options: dict[str, Any]
) -> None:
    """Setup does not wait for the add-on: entities exist, add-on figures unavailable."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"url": addon_server.url, "token": addon_server.token},
        options=homeiq_options,
        unique_id=TEST_UNIQUE_ID,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    unreachable = asyncio.Event()

    @callback
    def status_changed(event: Event[EventStateChangedData]) -> None:
        if (state := event.data["new_state"]) is not None and state.state == "unreachable":
            unreachable.set()

    unsub = async_track_state_change_event(hass, f"{PREFIX}status", status_changed)
    await hass.async_block_till_done()
    # The first refresh is a background task (block_till_done does not wait for those;
    # the shipper's never ends): give it a bounded while to find the add-on down.
    if hass.states.get(f"{PREFIX}status").state != "unreachable":
        async with asyncio.timeout(10):
            await unreachable.wait()
    unsub()
    assert hass.states.get(f"{PREFIX}events_stored").state == STATE_UNAVAILABLE
    assert hass.states.get(f"{PREFIX}backlog").state == "0"
    assert hass.states.get(f"{PREFIX}last_delivery").state == STATE_UNKNOWN
    assert hass.states.get(f"{PREFIX}status").state == "unreachable"
    assert hass.states.get(CONNECTION).state == STATE_OFF
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_token_starts_reauth(
    hass: HomeAssistant, addon_server: Any, homeiq_options: dict[str, Any]
) -> None:
    """A token the add-on refuses makes everything unavailable and asks to re-authenticate."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"url": addon_server.url, "token": "not-the-token"},
        options=homeiq_options,
        unique_id=TEST_UNIQUE_ID,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(f"{PREFIX}events_stored").state == STATE_UNAVAILABLE
    assert hass.states.get(f"{PREFIX}backlog").state == STATE_UNAVAILABLE
    assert hass.states.get(CONNECTION).state == STATE_UNAVAILABLE
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    assert await hass.config_entries.async_unload(entry.entry_id)


def _post_batches(addon_server: Any, good: int, bad: int) -> None:
    """Send batches straight to the add-on, as another client would."""
    now = dt_util.utcnow().isoformat()
    for i in range(good + bad):
        event = {
            "time_fired": now,
            "event_type": "other_client",
            "origin": "LOCAL",
            "context_id": f"{i:026d}",
        }
        if i >= good:
            event["time_fired"] = "not a time"
        body = json.dumps(
            {
                "batch_id": f"{dt_util.utcnow().timestamp():.6f}-{i}".replace(".", "_"),
                "source": {"instance_id": "other", "integration_version": "0"},
                "events": [event],
            }
        ).encode()
        request = urllib.request.Request(
            f"{addon_server.url}/api/v1/ingest",
            data=body,
            headers={**addon_server.headers, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as err:
            assert err.code < 500


async def test_status_follows_the_addon_alerts(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry, addon_server: Any
) -> None:
    """A few refused batches: warning; many: error; each with the add-on's alerts."""
    coordinator = homeiq_entry.runtime_data.coordinator
    # 1 refused in 34 (2.9%): above the 2% warning threshold, below the 5% error one.
    await hass.async_add_executor_job(_post_batches, addon_server, 33, 1)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    status = hass.states.get(f"{PREFIX}status")
    assert status.state == "warning"
    assert [alert["level"] for alert in status.attributes["alerts"]] == ["warning"]
    assert all(alert["message"] for alert in status.attributes["alerts"])

    await hass.async_add_executor_job(_post_batches, addon_server, 0, 10)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    status = hass.states.get(f"{PREFIX}status")
    assert status.state == "error"
    assert "error" in {alert["level"] for alert in status.attributes["alerts"]}


def _dashboard_entities(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["entity"]} if isinstance(node.get("entity"), str) else set()
        return found.union(*(_dashboard_entities(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_dashboard_entities(value) for value in node))
    return set()


async def test_dashboard_uses_real_entity_ids(
    hass: HomeAssistant, homeiq_entry: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """docs/dashboard.yaml shows only entities a fresh entry creates, enabled, with a state."""
    dashboard = await hass.async_add_executor_job(load_yaml, str(DASHBOARD))
    used = _dashboard_entities(dashboard)
    created = {
        entry.entity_id: entry
        for entry in er.async_entries_for_config_entry(entity_registry, homeiq_entry.entry_id)
    }
    assert used <= set(created), used - set(created)
    for entity_id in used:
        # A disabled entity would show as a yellow "Entity not available" box.
        assert created[entity_id].disabled_by is None, entity_id
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        assert state.state != STATE_UNAVAILABLE, entity_id
    cards = [card for view in dashboard["views"] for card in view["cards"]]
    # Statistics need a full hour before they draw anything; recorded history does not.
    assert "statistics-graph" not in {card["type"] for card in cards}
    rate = next(card for card in cards if card.get("title") == "Event rate")
    assert rate["type"] == "history-graph"
    assert rate["entities"][0]["entity"] == f"{PREFIX}event_rate"
    rate_state = hass.states.get(f"{PREFIX}event_rate")
    assert rate_state.attributes[ATTR_STATE_CLASS] == "measurement"
