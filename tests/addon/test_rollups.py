"""Hourly and daily rollups: exact figures, carried states, late events, idempotence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from tests.addon.retention_data import T0, Api, event
from tests.conftest import AddonProcess

M = timedelta(minutes=1)
H = timedelta(hours=1)
DAY = T0.isoformat()
NEXT_DAY = (T0 + timedelta(days=1)).isoformat()
NOW = T0 + timedelta(days=3)


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


async def test_numeric_hour_and_day(api: Api) -> None:
    temps = [(0, 10.0), (15, 20.0), (30, 30.0), (60 + 5, 4.0), (180, -2.0)]
    await api.ingest(event(T0 + m * M, "sensor.temp", str(v), numeric=v) for m, v in temps)
    await api.run(NOW, dry_run=True)  # builds the pending rollups, deletes nothing

    hours = await api.history("sensor.temp", start=DAY, end=NEXT_DAY, resolution="hour")
    assert hours == [
        {
            "start": "2026-01-01T00:00:00.000000+00:00",
            "count": 3,
            "min": 10.0,
            "max": 30.0,
            "mean": 20.0,
            "sum": 60.0,
        },
        {
            "start": "2026-01-01T01:00:00.000000+00:00",
            "count": 1,
            "min": 4.0,
            "max": 4.0,
            "mean": 4.0,
            "sum": 4.0,
        },
        {
            "start": "2026-01-01T03:00:00.000000+00:00",
            "count": 1,
            "min": -2.0,
            "max": -2.0,
            "mean": -2.0,
            "sum": -2.0,
        },
    ]
    days = await api.history("sensor.temp", start=DAY, end=NEXT_DAY, resolution="day")
    assert days == [
        {
            "start": "2026-01-01T00:00:00.000000+00:00",
            "count": 5,
            "min": -2.0,
            "max": 30.0,
            "mean": 12.4,
            "sum": 62.0,
        },
    ]


async def test_time_in_state_carries_over_quiet_hours_and_days(api: Api) -> None:
    door = [(0, "off"), (10, "on"), (40, "off"), (60 * 23 + 30, "on")]
    await api.ingest(event(T0 + m * M, "binary_sensor.door", s) for m, s in door)
    # The next day only one event, at noon: the day starts "on" from the evening before.
    await api.ingest([event(T0 + timedelta(days=1, hours=12), "binary_sensor.door", "off")])
    await api.run(NOW, dry_run=True)

    end = (T0 + timedelta(days=2)).isoformat()
    hours = await api.history("binary_sensor.door", start=DAY, end=end, resolution="hour")
    assert hours[0] == {
        "start": "2026-01-01T00:00:00.000000+00:00",
        "transitions": 2,
        "time_in_state": {"off": 1800.0, "on": 1800.0},
    }
    assert hours[1] == {
        "start": "2026-01-01T23:00:00.000000+00:00",
        "transitions": 1,
        "time_in_state": {"off": 1800.0, "on": 1800.0},
    }
    # Day 2, 12:00: the change is at the top of the hour, so the whole hour is "off".
    assert hours[2]["time_in_state"] == {"off": 3600.0}
    assert hours[2]["transitions"] == 1

    days = await api.history("binary_sensor.door", start=DAY, end=end, resolution="day")
    assert days == [
        # 22 quiet hours in "off" are counted although no event fell in them.
        {
            "start": "2026-01-01T00:00:00.000000+00:00",
            "transitions": 3,
            "time_in_state": {"off": 1800 + 22 * 3600 + 1800.0, "on": 1800.0 + 1800.0},
        },
        {
            "start": "2026-01-02T00:00:00.000000+00:00",
            "transitions": 1,
            "time_in_state": {"on": 12 * 3600.0, "off": 12 * 3600.0},
        },
    ]
    assert sum(days[0]["time_in_state"].values()) == 86_400


async def test_late_event_rebuilds_the_hour_and_the_next(api: Api) -> None:
    await api.ingest([event(T0, "switch.pump", "off"), event(T0 + 2 * H, "switch.pump", "on")])
    await api.run(NOW, dry_run=True)
    # A late event turns the pump on in hour 0, so hour 2 now starts "on" as well.
    await api.ingest([event(T0 + 30 * M, "switch.pump", "on")])
    await api.run(NOW, dry_run=True)
    hours = await api.history("switch.pump", start=DAY, end=NEXT_DAY, resolution="hour")
    assert [h["time_in_state"] for h in hours] == [
        {"off": 1800.0, "on": 1800.0},
        {"on": 3600.0},
    ]
    assert [h["transitions"] for h in hours] == [1, 0]
    days = await api.history("switch.pump", start=DAY, end=NEXT_DAY, resolution="day")
    assert days[0]["time_in_state"] == {"off": 1800.0, "on": 86_400 - 1800.0}
    assert days[0]["transitions"] == 1


async def test_rebuilding_is_idempotent(api: Api) -> None:
    await api.ingest(
        event(T0 + i * 7 * M, "sensor.power", str(i), numeric=float(i)) for i in range(500)
    )
    first = await api.run(NOW, dry_run=True)
    hours = await api.history("sensor.power", start=DAY, end=NOW.isoformat(), resolution="hour")
    again = await api.run(NOW, dry_run=True)
    assert first["rollups_built"]["hours"] == len(hours) == 59
    assert again["rollups_built"] == {"hours": 0, "days": 0}
    assert (
        await api.history("sensor.power", start=DAY, end=NOW.isoformat(), resolution="hour")
        == hours
    )
    assert sum(h["count"] for h in hours) == 500


async def test_raw_history_answers_from_rollups_where_raw_is_gone(api: Api) -> None:
    await api.ingest(
        event(T0 + i * 10 * M, "sensor.light_level", str(i % 7), numeric=i % 7)
        for i in range(6 * 24 * 40)
    )
    status, _ = await api.call(
        "PUT",
        "/api/v1/retention/policies/default",
        {"raw_days": 10, "hourly_days": 20, "daily_days": "forever"},
    )
    assert status == 200
    await api.run(T0 + timedelta(days=40), dry_run=False)

    points = await api.history(
        "sensor.light_level", start=DAY, limit="10000", end=(T0 + timedelta(days=40)).isoformat()
    )
    kinds = [p.get("resolution", "raw") for p in points]
    # Oldest first: 20 days of daily rollups, 10 days of hourly, then 10 days of raw.
    assert kinds == ["day"] * 20 + ["hour"] * 240 + ["raw"] * 6 * 24 * 10
    assert points[0]["count"] == 6 * 24
    assert points[20]["start"] == "2026-01-21T00:00:00.000000+00:00"
    assert points[260]["time"] == "2026-01-31T00:00:00.000000+00:00"


async def test_many_entities_in_one_hour(api: Api) -> None:
    # More entities than one build slice holds: every one of them gets its own rollup.
    await api.ingest(
        event(T0 + timedelta(seconds=i), f"sensor.s{i % 300:03d}", str(i), numeric=float(i))
        for i in range(3000)
    )
    report = await api.run(NOW, dry_run=True)
    assert report["rollups_built"]["hours"] == 1
    for name, first in (("sensor.s000", 0), ("sensor.s299", 299)):
        hours = await api.history(name, start=DAY, end=NEXT_DAY, resolution="hour")
        assert hours == [
            {"start": "2026-01-01T00:00:00.000000+00:00", "count": 10, "min": float(first),
             "max": float(first + 2700), "mean": first + 1350.0, "sum": 10 * first + 13500.0}
        ]  # fmt: skip


async def test_hourly_rollups_go_hour_by_hour_when_the_cutoff_falls_inside_a_day(
    api: Api,
) -> None:
    await api.ingest(event(T0 + h * H, "sensor.temp", str(h), numeric=float(h)) for h in range(72))
    status, _ = await api.call(
        "PUT", "/api/v1/retention/policies/default",
        {"raw_days": 1, "hourly_days": 1.25, "daily_days": "forever"},
    )  # fmt: skip
    assert status == 200
    now = T0 + timedelta(days=2, hours=12)  # the hourly cutoff: day 1, 06:00
    dry = await api.run(now, dry_run=True)
    real = await api.run(now, dry_run=False)
    assert dry["totals"]["hourly_rollups"] == real["totals"]["hourly_rollups"] == 24 + 6
    end = (T0 + timedelta(days=3)).isoformat()
    hours = await api.history("sensor.temp", start=DAY, end=end, resolution="hour")
    # Days stand in before the oldest hour kept (day 1 overlaps it), then the hours from
    # the cutoff on.
    assert [p.get("resolution") for p in hours[:3]] == ["day", "day", None]
    assert hours[2]["start"] == "2026-01-02T06:00:00.000000+00:00"
    assert [p["sum"] for p in hours[2:]] == [float(h) for h in range(30, 60)]  # before now
    days = await api.history("sensor.temp", start=DAY, end=end, resolution="day")
    assert [p["count"] for p in days] == [24, 24]  # day 2 has not ended
    assert days[1]["sum"] == float(sum(range(24, 48)))


async def test_months_of_rollups_account_for_every_event(api: Api) -> None:
    # 70 days (three rows of 32 days in the daily tier): a sensor read every 5 hours (one
    # reading in most of its hours, two in some), a door that changes every 7 hours, and
    # a light that is quiet for days on end. Raw events go after 10 days.
    temps = [(T0 + h * H + (h % 3) * M, float(h % 9) / 2) for h in range(0, 70 * 24, 5)]
    temps += [(T0 + h * H + 40 * M, 100.0) for h in range(0, 70 * 24, 50)]
    door = [(T0 + h * H + 17 * M, "on" if i % 2 else "off") for i, h in
            enumerate(range(0, 70 * 24, 7))]  # fmt: skip
    light = [(T0 + d * 24 * H + 5 * H, "on" if d % 2 else "off") for d in range(0, 70, 9)]
    await api.ingest(
        [event(t, "sensor.temp", str(v) if v != 100 else "100", numeric=v) for t, v in temps]
        + [event(t, "binary_sensor.door", s) for t, s in door]
        + [event(t, "light.porch", s) for t, s in light]
    )
    status, _ = await api.call(
        "PUT", "/api/v1/retention/policies/default",
        {"raw_days": 10, "hourly_days": 40, "daily_days": "forever"},
    )  # fmt: skip
    assert status == 200
    now = T0 + timedelta(days=70)
    dry = await api.run(now, dry_run=True)
    real = await api.run(now, dry_run=False)
    assert dry["totals"] == real["totals"]
    assert real["totals"]["raw_events"] == sum(
        1 for t, _ in [*temps, *door, *light] if t < now - timedelta(days=10)
    )
    end = now.isoformat()

    days = await api.history("sensor.temp", start=DAY, end=end, resolution="day", limit="100")
    assert len(days) == 70
    for d, point in enumerate(days):
        values = [v for t, v in temps if T0 + d * 24 * H <= t < T0 + (d + 1) * 24 * H]
        assert point["start"] == (T0 + timedelta(days=d)).isoformat(timespec="microseconds")
        assert (point["count"], point["min"], point["max"]) == (len(values), min(values),
                                                                max(values))  # fmt: skip
        assert point["sum"] == pytest.approx(sum(values))
    hours = await api.history("sensor.temp", start=DAY, end=end, resolution="hour", limit="5000")
    kept = [h for h in hours if "resolution" not in h]  # the last 40 days by the hour
    assert sum(h["count"] for h in kept) == sum(
        1 for t, _ in temps if t >= now - timedelta(days=40)
    )
    single = [h for h in kept if h["count"] == 1]
    assert single and all(h["min"] == h["max"] == h["sum"] == h["mean"] for h in single)

    for entity_id, changes in (("binary_sensor.door", door), ("light.porch", light)):
        days = await api.history(entity_id, start=DAY, end=end, resolution="day", limit="100")
        # A day with events of the entity has a rollup; its time in state fills it from
        # the first event on, and every change is counted.
        event_days = sorted({(t - T0).days for t, _ in changes})
        assert [p["start"] for p in days] == [
            (T0 + timedelta(days=d)).isoformat(timespec="microseconds") for d in event_days
        ]
        first = (changes[0][0] - T0).total_seconds()
        assert sum(days[0]["time_in_state"].values()) == pytest.approx(86_400 - first)
        assert all(sum(p["time_in_state"].values()) == pytest.approx(86_400) for p in days[1:])
        assert sum(p["transitions"] for p in days) == len(changes) - 1
    days = await api.history("binary_sensor.door", start=DAY, end=end, resolution="day",
                             limit="100")  # fmt: skip
    expected_on = sum(
        ((door[i + 1][0] if i + 1 < len(door) else now) - t).total_seconds()
        for i, (t, s) in enumerate(door) if s == "on"
    )  # fmt: skip
    assert sum(p["time_in_state"].get("on", 0) for p in days) == pytest.approx(expected_on)


async def test_daily_rollups_go_day_by_day_when_the_cutoff_falls_inside_a_row(api: Api) -> None:
    # Daily rollups are stored 32 days to a row; the cutoff (day 30) falls inside one.
    await api.ingest(
        event(T0 + h * H, "sensor.temp", str(h % 10), numeric=float(h % 10))
        for h in range(0, 80 * 24, 6)
    )
    status, _ = await api.call(
        "PUT", "/api/v1/retention/policies/default",
        {"raw_days": 5, "hourly_days": 10, "daily_days": 50},
    )  # fmt: skip
    assert status == 200
    now = T0 + timedelta(days=80)
    dry = await api.run(now, dry_run=True)
    real = await api.run(now, dry_run=False)
    assert dry["totals"]["daily_rollups"] == real["totals"]["daily_rollups"] == 30
    days = await api.history("sensor.temp", start=DAY, end=now.isoformat(), resolution="day",
                             limit="100")  # fmt: skip
    assert [p["start"] for p in days] == [
        (T0 + timedelta(days=d)).isoformat(timespec="microseconds") for d in range(30, 80)
    ]
    assert all(p["count"] == 4 for p in days)
    again = await api.run(now, dry_run=False)
    assert again["totals"]["daily_rollups"] == 0
