"""Retention over months of synthetic history, run with a simulated clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.addon.retention_data import T0, Api, event, per_policy, series
from tests.conftest import AddonProcess

NOW = T0 + timedelta(days=120)
HOUR = timedelta(hours=1)

POLICIES = [
    {"name": "power", "match_type": "entity", "pattern": "sensor.*_power", "raw_days": 7},
    {
        "name": "locks",
        "match_type": "domain",
        "pattern": "lock",
        "raw_days": 730,
        "hourly_days": 730,
    },
    {"name": "services", "match_type": "event_type", "pattern": "call_service", "raw_days": 14},
]
DEFAULT = {"raw_days": 30, "hourly_days": 60, "daily_days": "forever"}
# name -> (raw days, hourly days) as the test expects the policies to resolve.
DAYS = {"default": (30, 60), "power": (7, 60), "locks": (730, 730), "services": (14, 60)}


def policy_of(ev: dict[str, Any]) -> str:
    entity = ev.get("entity_id")
    if entity and entity.startswith("sensor.") and entity.endswith("_power"):
        return "power"
    if entity and entity.startswith("lock."):
        return "locks"
    if ev["event_type"] == "call_service":
        return "services"
    return "default"


def dataset() -> list[dict[str, Any]]:
    return [
        *series("sensor.house_power", T0, 120, timedelta(minutes=30)),
        *series("sensor.outdoor_temperature", T0, 120, HOUR),
        *series("lock.front_door", T0, 120, timedelta(hours=6), ["locked", "unlocked"]),
        *series("binary_sensor.hall_motion", T0, 120, timedelta(hours=2), ["on", "off"]),
        *(event(T0 + timedelta(hours=12 * i), None, event_type="call_service") for i in range(240)),
    ]


def expected(events: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What retention at NOW must delete, computed independently of the add-on."""
    from datetime import datetime

    out = {name: {"raw_events": 0, "hourly_rollups": 0, "daily_rollups": 0} for name in DAYS}
    hours: set[tuple[str, datetime]] = set()
    for ev in events:
        name = policy_of(ev)
        t = datetime.fromisoformat(ev["time_fired"])
        if t < NOW - timedelta(days=DAYS[name][0]):
            out[name]["raw_events"] += 1
        if ev.get("entity_id"):
            hours.add((ev["entity_id"], t.replace(minute=0, second=0, microsecond=0)))
    for entity_id, hour in hours:
        name = policy_of({"entity_id": entity_id, "event_type": "state_changed"})
        if hour < NOW - timedelta(days=DAYS[name][1]):
            out[name]["hourly_rollups"] += 1
    return out


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


async def _configure(api: Api) -> None:
    status, _ = await api.call("PUT", "/api/v1/retention/policies/default", DEFAULT)
    assert status == 200
    for body in POLICIES:
        status, answer = await api.call("POST", "/api/v1/retention/policies", body)
        assert status == 201, answer


async def test_dry_run_reports_exactly_what_the_run_deletes(
    api: Api, addon_server: AddonProcess
) -> None:
    events = dataset()
    await api.ingest(events)
    await _configure(api)
    want = expected(events)

    dry = await api.run(NOW, dry_run=True)
    assert addon_server.row_count() == len(events)  # a dry run deletes nothing
    real = await api.run(NOW, dry_run=False)

    assert per_policy(dry) == per_policy(real) == want
    assert dry["totals"] == real["totals"]
    assert addon_server.row_count() == len(events) - real["totals"]["raw_events"]
    # A second run at the same time finds nothing more to do.
    again = await api.run(NOW, dry_run=False)
    assert again["totals"] == {"raw_events": 0, "hourly_rollups": 0, "daily_rollups": 0}


async def test_lock_history_outlives_default_and_rollups_survive_raw(
    api: Api, addon_server: AddonProcess
) -> None:
    events = dataset()
    await api.ingest(events)
    await _configure(api)
    await api.run(NOW, dry_run=False)

    start, end = T0.isoformat(), NOW.isoformat()
    # Locks keep 2 years of raw events: all of them are still there.
    locks = await api.history("lock.front_door", start=start, end=end, limit="1000")
    assert len([p for p in locks if "resolution" not in p]) == 480
    # The temperature's first 60 days of hourly rollups are gone but the daily ones stay,
    # and answer in their place.
    hourly = await api.history(
        "sensor.outdoor_temperature", start=start, end=end, resolution="hour", limit="5000"
    )
    days = [p for p in hourly if p.get("resolution") == "day"]
    assert len(days) == 60
    assert days[0]["start"].startswith("2026-01-01T00:00:00")
    assert {p["count"] for p in days} == {24}
    assert len(hourly) - len(days) == 60 * 24


def attribute_sets(addon: AddonProcess) -> tuple[int, int]:
    """(attribute sets stored, events whose set is missing)."""
    stored, dangling = addon.query(
        "SELECT (SELECT COUNT(*) FROM attributes), (SELECT COUNT(*) FROM events e"
        " WHERE attributes_ref IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM attributes a WHERE a.id = e.attributes_ref))"
    )[0]
    return stored, dangling


async def test_attribute_sets_no_event_uses_are_removed(
    api: Api, addon_server: AddonProcess
) -> None:
    # A media player whose position makes every attribute set new, for 60 days; a sensor
    # whose one set is used from the first day to the last.
    player = series("media_player.tv", T0, 60, HOUR, ["playing", "paused"])
    for i, ev in enumerate(player):
        ev["attributes"] = {"media_position": i}
    meter = series("sensor.meter", T0, 120, timedelta(hours=6))
    for ev in meter:
        ev["attributes"] = {"unit_of_measurement": "W"}
    await api.ingest([*player, *meter])
    assert attribute_sets(addon_server) == (len(player) + 1, 0)

    dry = await api.run(NOW, dry_run=True)
    assert dry["attribute_sets_removed"] is None  # known only once events are gone
    assert attribute_sets(addon_server) == (len(player) + 1, 0)

    report = await api.run(NOW, dry_run=False)
    # The default keeps 30 days: every player event is gone, and with it every set
    # but the meter's.
    assert report["totals"]["raw_events"] == len(player) + sum(
        1 for e in meter if e["time_fired"] < (NOW - timedelta(days=30)).isoformat()
    )
    assert report["attribute_sets_removed"] == len(player)
    assert attribute_sets(addon_server) == (1, 0)

    # A set seen before is stored again when it comes back (no stale cached id).
    back = event(NOW, "media_player.tv", "playing")
    back["attributes"] = {"media_position": 0}
    await api.ingest([back])
    status, answer = await api.call("GET", "/api/v1/events?entity_id=media_player.tv")
    assert status == 200, answer
    assert [e["attributes"] for e in answer["events"]] == [{"media_position": 0}]
    assert attribute_sets(addon_server) == (2, 0)


async def test_ingest_goes_on_during_retention(api: Api, addon_server: AddonProcess) -> None:
    old = series("sensor.bulk_power", T0, 90, timedelta(minutes=2))
    for i, ev in enumerate(old):
        ev["attributes"] = {"k": i % 500}
    await api.ingest(old)
    await _configure(api)
    fresh = [
        event(
            NOW - timedelta(minutes=30) + timedelta(milliseconds=i),
            "sensor.live",
            str(i),
            numeric=float(i),
        )
        for i in range(6000)
    ]
    for i, ev in enumerate(fresh):
        # The old events' sets again: the ones only purged events used must survive.
        ev["attributes"] = {"k": i % 500}

    async def keep_ingesting() -> int:
        for i in range(0, len(fresh), 200):
            await api.ingest(fresh[i : i + 200])
        return len(fresh)

    report, sent = await asyncio.gather(api.run(NOW, dry_run=False), keep_ingesting())
    assert report["status"] == "ok"
    purged = report["totals"]["raw_events"]
    assert purged == sum(1 for e in old if e["time_fired"] < (NOW - timedelta(days=7)).isoformat())
    assert addon_server.row_count() == len(old) - purged + sent
    assert attribute_sets(addon_server) == (500, 0)


async def test_stats_report_tiers_last_and_next_run(api: Api) -> None:
    await api.ingest(series("sensor.outdoor_temperature", T0, 10, HOUR))
    status, before = await api.call("GET", "/api/v1/retention/stats")
    assert status == 200
    assert before["last_run"] is None
    assert before["next_run"] is not None
    await api.run(NOW, dry_run=False)
    _, stats = await api.call("GET", "/api/v1/retention/stats")
    assert stats["last_run"]["status"] == "ok"
    assert stats["last_run"]["dry_run"] is False
    assert stats["tiers"]["raw"]["rows"] == 0  # 10 days, 110 days ago: past 30 days
    assert stats["tiers"]["hourly"]["rows"] == 240  # hourly rollups are kept 365 days
    assert stats["tiers"]["daily"]["rows"] == 10
    assert stats["tiers"]["daily"]["oldest"].startswith("2026-01-01")
    assert stats["db_size_bytes"] > 0


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"dry_run": "yes"}, 400, "dry_run"),
        ({"dry_run": True, "now": "yesterday"}, 400, "now"),
        ({"dry_run": True, "extra": 1}, 400, "body"),
        (b"{not json", 400, "malformed JSON"),
    ],
)
async def test_run_rejects_bad_input(api: Api, body: Any, status: int, fragment: str) -> None:
    got, answer = await api.call("POST", "/api/v1/retention/run", body)
    assert got == status
    assert fragment in answer["message"]


def pages(addon: AddonProcess) -> tuple[int, int]:
    """(pages of the database, of them free), as a reader sees it (WAL included)."""
    count, free = addon.query("SELECT * FROM pragma_page_count, pragma_freelist_count")[0]
    return count, free


async def test_purging_raw_events_shrinks_the_file(api: Api, addon_server: AddonProcess) -> None:
    # About one event per entity-hour, the worst case for rollups (one hourly rollup per
    # event), with the enrichment real events carry; 300 days, so that the default
    # policy (raw 30 days, hourly 365) purges 90 % of them.
    sensors = [f"sensor.room_{i}_temperature" for i in range(4)]
    doors = [f"binary_sensor.door_{i}" for i in range(4)]
    events = []
    for day in range(300):
        for hour in range(24):
            for i, entity_id in enumerate(sensors + doors):
                t = T0 + timedelta(days=day, hours=hour, minutes=(7 * i + hour) % 60)
                if i < len(sensors):
                    value = round(18 + ((day * 24 + hour) * (i + 3)) % 70 / 10, 1)
                    ev = event(t, entity_id, str(value), numeric=value)
                    ev.update(unit="°C", device_class="temperature",
                              attributes={"state_class": "measurement", "unit": "°C"})  # fmt: skip
                else:
                    ev = event(t, entity_id, ("on", "off")[(day + hour + i) % 2])
                    ev.update(device_class="door", attributes={"device_class": "door"})
                ev.update(area="Hall", friendly_name=entity_id.split(".")[1].replace("_", " "))
                events.append(ev)
    await api.ingest(events)
    before, _ = pages(addon_server)

    report = await api.run(T0 + timedelta(days=300), dry_run=False)
    assert report["totals"]["raw_events"] == len(events) * 9 // 10
    after, free = pages(addon_server)
    # Every rollup kept, and the file is at most 35 % of what it was, no page left free.
    assert after <= before * 0.35, (before, after)
    assert free == 0
    first_day = {"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()}
    assert len(await api.history(sensors[0], **first_day, resolution="hour")) == 24
