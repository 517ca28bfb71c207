"""Capture and enrichment: what HA fires reaches the add-on with everything HA knew."""

from __future__ import annotations

from datetime import UTC, datetime
import gc
from typing import Any

from helpers import registries
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    entity_registry as er,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.homeiq.const import (
    CONF_BATCH_SIZE,
    CONF_CAPTURE_MODE,
    CONF_DROP_ATTRIBUTES,
    CONF_ENRICH_PEOPLE,
    CONF_ENRICH_SUN,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_LABELS,
    CONF_INCLUDE_STATE_REPORTED,
    CONF_WEATHER_ENTITY,
)

T0 = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC).timestamp()


async def stored(entry: MockConfigEntry, **filters: Any) -> list[dict[str, Any]]:
    """Deliver everything captured, then read it back from the add-on, oldest first."""
    await entry.runtime_data.pipeline.async_wait_delivered()
    answer = await entry.runtime_data.client.async_events(limit=1000, **filters)
    return list(reversed(answer["events"]))


async def fresh(entry: MockConfigEntry, seen: set[int]) -> list[tuple[str, str | None]]:
    """The test's own events stored since the last call (setup/registry events left out)."""
    records = [r for r in await stored(entry) if r["id"] not in seen]
    seen.update(r["id"] for r in records)
    kinds = ("state_changed", "state_reported", "homeiq_ping")
    return [(r["event_type"], r.get("entity_id")) for r in records if r["event_type"] in kinds]


def when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def test_state_change_enrichment(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Every enrichment field of a state change, including the cause and the snapshots."""
    reg = await registries(hass)
    hass.states.async_set("weather.home", "sunny", {"temperature": 21.5})
    hass.states.async_set("sun.sun", "above_horizon", {"elevation": 12.3})
    hass.states.async_set("person.ann", "home")
    hass.states.async_set("person.bob", "not_home")
    user = await hass.auth.async_create_user("Alice")
    entry = await make_entry(
        addon_server.url,
        addon_server.token,
        **{CONF_WEATHER_ENTITY: "weather.home", CONF_ENRICH_SUN: True, CONF_ENRICH_PEOPLE: True},
    )
    attrs = {
        "friendly_name": "Plug power",
        "unit_of_measurement": "W",
        "device_class": "power",
        "state_class": "measurement",
        "voltage": 230,
    }
    hass.states.async_set("sensor.plug_power", "10.5", attrs, timestamp=T0)
    hass.states.async_set(
        "sensor.plug_power", "12", attrs, context=Context(user_id=user.id), timestamp=T0 + 30
    )
    first, second = await stored(entry, entity_id="sensor.plug_power")

    common = {
        "event_type": "state_changed",
        "origin": "LOCAL",
        "entity_id": "sensor.plug_power",
        "domain": "sensor",
        "area_id": reg["area"].id,
        "area": "Kitchen",
        "floor": "Ground",
        "device_id": reg["device"].id,
        "device_name": "Plug",
        "device_manufacturer": "Acme",
        "device_model": "P1",
        "labels": [reg["label"].label_id],
        "device_class": "power",
        "state_class": "measurement",
        "unit": "W",
        "friendly_name": "Plug power",
        "attributes": {"voltage": 230},
        "outdoor_temperature": 21.5,
        "weather_condition": "sunny",
        "sun_elevation": 12.3,
        "people_home": 1,
    }
    for record in (first, second):
        assert {k: record.get(k) for k in common} == common
    assert first["state"] == "10.5"
    assert first["numeric_value"] == 10.5
    assert first.get("old_state") is None
    assert first.get("prev_state_seconds") is None
    assert when(first["time_fired"]) == T0
    assert first["cause"] == "device"
    assert first["cause_name"] == "test"  # the integration that owns the device

    assert second["state"] == "12"
    assert second["old_state"] == "10.5"
    assert second["numeric_value"] == 12.0
    assert second["prev_state_seconds"] == 30.0
    assert when(second["last_changed"]) == T0 + 30
    assert second["context_user_id"] == user.id
    assert (second["cause"], second["cause_name"], second["cause_id"]) == ("user", "Alice", user.id)
    assert len(second["context_id"]) == 26
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_state_report_keeps_when_it_was_reported(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A state written again unchanged fires state_reported: the store keeps its time."""
    entry = await make_entry(
        addon_server.url, addon_server.token, **{CONF_INCLUDE_STATE_REPORTED: True}
    )
    hass.states.async_set("sensor.meter", "5", timestamp=T0)
    hass.states.async_set("sensor.meter", "5", timestamp=T0 + 60)
    changed, reported = await stored(entry, entity_id="sensor.meter")
    assert changed["event_type"] == "state_changed"
    assert reported["event_type"] == "state_reported"
    assert when(reported["data"]["last_reported"]) == T0 + 60
    assert when(reported["last_changed"]) == T0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_causes_and_other_event_types(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Automation and script chains, integration-reported states, plain events and removals."""
    entry = await make_entry(addon_server.url, addon_server.token)
    run = Context()
    hass.bus.async_fire(
        "automation_triggered", {"name": "Evening", "entity_id": "automation.evening"}, context=run
    )
    hass.states.async_set("light.porch", "on", context=run)
    script_run = Context()
    hass.bus.async_fire(
        "script_started", {"name": "Movie", "entity_id": "script.movie"}, context=script_run
    )
    hass.states.async_set("media_player.tv", "playing", context=Context(parent_id=script_run.id))
    hass.states.async_set("switch.pump", "off")
    hass.bus.async_fire("homeiq_test", {"answer": 42, "nested": {"ok": True}})
    hass.states.async_remove("switch.pump")

    records = await stored(entry)
    by_key = {(r["event_type"], r.get("entity_id")): r for r in records}

    porch = by_key["state_changed", "light.porch"]
    assert (porch["cause"], porch["cause_name"], porch["cause_id"]) == (
        "automation",
        "Evening",
        "automation.evening",
    )
    tv = by_key["state_changed", "media_player.tv"]
    assert (tv["cause"], tv["cause_name"], tv["cause_id"]) == ("script", "Movie", "script.movie")
    assert tv["context_parent_id"] == script_run.id
    triggered = by_key["automation_triggered", None]
    assert triggered["data"] == {"name": "Evening", "entity_id": "automation.evening"}
    assert triggered["cause"] == "automation"

    custom = by_key["homeiq_test", None]
    assert custom["data"] == {"answer": 42, "nested": {"ok": True}}
    assert custom["cause"] == "system"

    pump = [r for r in records if r.get("entity_id") == "switch.pump"]
    assert [(r.get("old_state"), r.get("state")) for r in pump] == [(None, "off"), ("off", None)]
    assert pump[0]["cause"] == "integration"
    assert pump[0]["cause_name"] == "switch"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_registry_changes_reach_later_events(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Renaming an area invalidates the cached facts: the next event has the new name."""
    reg = await registries(hass)
    entry = await make_entry(addon_server.url, addon_server.token)
    hass.states.async_set("sensor.plug_power", "1")
    await entry.runtime_data.pipeline.async_flush()
    ar.async_get(hass).async_update(reg["area"].id, name="Cooking")
    await hass.async_block_till_done()
    hass.states.async_set("sensor.plug_power", "2")
    records = await stored(entry, entity_id="sensor.plug_power")
    assert [(r["state"], r["area"]) for r in records] == [("1", "Kitchen"), ("2", "Cooking")]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_each_event_carries_the_attributes_its_state_had(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """The capture passes an entity's attributes on only when they change: every event
    still carries its own state's, across attribute changes, a registry change between
    capture and serialization, and an option that drops one."""
    reg = await registries(hass)
    entry = await make_entry(addon_server.url, addon_server.token)
    pipeline = entry.runtime_data.pipeline
    plug = "sensor.plug_power"
    hass.states.async_set(plug, "1", {"voltage": 230})
    hass.states.async_set(plug, "2", {"voltage": 230})  # equal: HA keeps the same object
    hass.states.async_set(plug, "3", {"voltage": 231, "phase": "L1"})
    hass.states.async_set(plug, "4", {"voltage": 231, "phase": "L1"})
    await pipeline.async_flush()
    # Captured with unchanged attributes, then the registries change before the flush
    # serializes them: the serialized entities are thrown away, the attributes are not.
    hass.states.async_set(plug, "5", {"voltage": 231, "phase": "L1"})
    ar.async_get(hass).async_update(reg["area"].id, name="Cooking")
    await hass.async_block_till_done()
    hass.states.async_set(plug, "6", {"voltage": 232, "phase": "L1"})
    await pipeline.async_flush()
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_DROP_ATTRIBUTES: ["phase"]}
    )
    await hass.async_block_till_done()
    hass.states.async_set(plug, "7", {"voltage": 232, "phase": "L1"})
    hass.states.async_remove(plug)
    hass.states.async_set(plug, "8", {"voltage": 233})

    records = await stored(entry, entity_id=plug)
    assert [(r.get("state"), r.get("attributes"), r.get("area")) for r in records] == [
        ("1", {"voltage": 230}, "Kitchen"),
        ("2", {"voltage": 230}, "Kitchen"),
        ("3", {"voltage": 231, "phase": "L1"}, "Kitchen"),
        ("4", {"voltage": 231, "phase": "L1"}, "Kitchen"),
        ("5", {"voltage": 231, "phase": "L1"}, "Cooking"),
        ("6", {"voltage": 232, "phase": "L1"}, "Cooking"),
        ("7", {"voltage": 232}, "Cooking"),
        (None, None, "Cooking"),
        ("8", {"voltage": 233}, "Cooking"),
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_new_entity_after_an_attribute_change_keeps_each_events_attributes(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A serialization that meets an entity without registry facts goes back to the loop
    for them and does that part again: what it read on the way (an attribute change of
    another entity) must not leak into the events before it."""
    entry = await make_entry(addon_server.url, addon_server.token)
    pipeline = entry.runtime_data.pipeline
    hass.states.async_set("sensor.plug_power", "1", {"voltage": 230})
    await pipeline.async_flush()
    hass.states.async_set("sensor.plug_power", "2", {"voltage": 230})  # unchanged
    hass.states.async_set("sensor.plug_power", "3", {"voltage": 240})
    hass.states.async_set("sensor.brand_new", "on", {"x": 1})  # no registry facts yet
    records = await stored(entry, entity_id="sensor.plug_power")
    assert [(r["state"], r["attributes"]) for r in records] == [
        ("1", {"voltage": 230}),
        ("2", {"voltage": 230}),
        ("3", {"voltage": 240}),
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_captured_state_changes_hold_nothing_the_garbage_collector_tracks(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """What waits to be serialized is plain values: the collector never walks the
    backlog, and HA's Events and States die when HA lets them go (held, they made it run
    full collections about twice as often as HA alone under load)."""
    entry = await make_entry(addon_server.url, addon_server.token)
    capture = entry.runtime_data.pipeline.capture
    hass.states.async_set("sensor.meter", "1", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.meter", "2", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.meter", "3", {"unit_of_measurement": "W"})
    waiting = [c for c in capture.buffer if c[1] == "sensor.meter"]
    assert [c[7] for c in waiting] == ["1", "2", "3"]
    gc.collect()  # the collector stops tracking a tuple once it finds only plain values
    # The first holds the attributes object (new to the capture); the others do not.
    assert [gc.is_tracked(c) for c in waiting] == [True, False, False]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_many_new_entities_in_one_flush_all_get_their_facts(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Hundreds of entities first seen in one flush, across several batches: every event
    carries its entity's registry facts, in capture order, none lost or repeated."""
    reg = await registries(hass)
    ent_reg = er.async_get(hass)
    for i in range(300):
        registered = ent_reg.async_get_or_create(
            "sensor", "test", f"many{i}", suggested_object_id=f"m{i}"
        )
        if i % 2:
            ent_reg.async_update_entity(registered.entity_id, area_id=reg["area"].id)
    entry = await make_entry(addon_server.url, addon_server.token, **{CONF_BATCH_SIZE: 250})
    for i in range(600):
        hass.states.async_set(f"sensor.m{i % 300}", str(i))
    records = [r for r in await stored(entry) if r.get("entity_id", "").startswith("sensor.m")]
    assert [r["state"] for r in records] == [str(i) for i in range(600)]
    for r in records:
        odd = int(r["entity_id"].removeprefix("sensor.m")) % 2
        assert (r.get("area"), r.get("floor")) == (("Kitchen", "Ground") if odd else (None, None))
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_filters_and_live_options(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Include/exclude rules, then option changes applied without a reload."""
    reg = await registries(hass)
    ent_reg = er.async_get(hass)
    labeled = ent_reg.async_get_or_create("switch", "test", "lab", suggested_object_id="labeled")
    ent_reg.async_update_entity(labeled.entity_id, labels={reg["label"].label_id})
    kitchen = ent_reg.async_get_or_create("sensor", "test", "k", suggested_object_id="keep_kitchen")
    ent_reg.async_update_entity(kitchen.entity_id, area_id=reg["area"].id)
    entry = await make_entry(
        addon_server.url,
        addon_server.token,
        **{
            CONF_INCLUDE_ENTITIES: ["sensor.keep_*", "light.*"],
            CONF_INCLUDE_LABELS: [reg["label"].label_id],
            CONF_EXCLUDE_ENTITIES: ["light.noisy"],
            CONF_EXCLUDE_DOMAINS: ["sun"],
            CONF_EXCLUDE_AREAS: [reg["area"].id],
        },
    )
    pipeline = entry.runtime_data.pipeline
    for entity_id in (
        "sensor.keep_a",
        "sensor.other",
        "light.a",
        "light.noisy",
        "sun.sun",
        "switch.labeled",
        "sensor.keep_kitchen",
    ):
        hass.states.async_set(entity_id, "1")
    hass.bus.async_fire("homeiq_ping")
    records = await stored(entry)
    assert {
        (r["event_type"], r.get("entity_id"))
        for r in records
        if r["event_type"] in ("state_changed", "homeiq_ping")
    } == {
        ("state_changed", "sensor.keep_a"),
        ("state_changed", "light.a"),
        ("state_changed", "switch.labeled"),
        ("homeiq_ping", None),
    }

    # Live: state changes only, no entity rules.
    hass.config_entries.async_update_entry(
        entry,
        options={
            **entry.options,
            CONF_CAPTURE_MODE: "state_changes",
            CONF_INCLUDE_ENTITIES: [],
            CONF_INCLUDE_LABELS: [],
            CONF_EXCLUDE_ENTITIES: [],
            CONF_EXCLUDE_DOMAINS: [],
            CONF_EXCLUDE_AREAS: [],
        },
    )
    await hass.async_block_till_done()
    assert entry.runtime_data.pipeline is pipeline
    hass.states.async_set("sensor.other", "2")
    hass.bus.async_fire("homeiq_ping")
    seen = {r["id"] for r in records}
    new = await fresh(entry, seen)
    assert new == [("state_changed", "sensor.other")]

    # Live: chosen event types only.
    hass.config_entries.async_update_entry(
        entry,
        options={
            **entry.options,
            CONF_CAPTURE_MODE: "event_types",
            CONF_EVENT_TYPES: ["homeiq_ping"],
        },
    )
    await hass.async_block_till_done()
    hass.states.async_set("sensor.other", "3")
    hass.bus.async_fire("homeiq_ping")
    assert await fresh(entry, seen) == [("homeiq_ping", None)]

    # Live: state_reported on, then off again.
    hass.config_entries.async_update_entry(
        entry,
        options={**entry.options, CONF_CAPTURE_MODE: "all", CONF_INCLUDE_STATE_REPORTED: True},
    )
    await hass.async_block_till_done()
    hass.states.async_set("sensor.other", "3")  # unchanged: HA fires state_reported
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_INCLUDE_STATE_REPORTED: False}
    )
    await hass.async_block_till_done()
    hass.states.async_set("sensor.other", "3")
    assert await fresh(entry, seen) == [("state_reported", "sensor.other")]
    assert await hass.config_entries.async_unload(entry.entry_id)
