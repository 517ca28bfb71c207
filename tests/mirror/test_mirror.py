"""The add-on mirroring what it stores to real engines: every point, once, whatever fails.

The add-on runs as a real process configured by its options.json; events go in through
POST /api/v1/ingest and are read back from victoria-metrics' /api/v1/export.
"""

from __future__ import annotations

import asyncio
from collections import Counter
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
import threading
import time
from typing import Any

from aiohttp import web
import pytest

from tests.mirror.addon import (
    T0,
    MirroringAddon,
    mirroring_addon,
    sensor_stream,
    state,
    vm_target,
)
from tests.mirror.conftest import TOKEN, Answer, influx_error
from tests.mirror.engines import VictoriaMetrics, VmAgent, VmAuth, samples, wait_until


def _ms(offset: timedelta) -> int:
    return int((T0 + offset).timestamp() * 1000)


def value_samples(*servers: VictoriaMetrics) -> Counter[tuple[str, int, float]]:
    """(entity_id, ms, value) of every homeiq_value sample over the servers, counted."""
    found: Counter[tuple[str, int, float]] = Counter()
    for (name, labels), values in samples(*servers).items():
        if name == "homeiq_value":
            entity = dict(labels)["entity_id"]
            found.update((entity, ms, value) for ms, value in values)
    return found


def expected_values(events: list[dict[str, Any]]) -> Counter[tuple[str, int, float]]:
    """What ``value_samples`` finds once every event arrived once (milliseconds)."""
    return Counter(
        (e["entity_id"], int(datetime.fromisoformat(e["time_fired"]).timestamp() * 1000),
         e["numeric_value"])
        for e in events
    )  # fmt: skip


def test_every_stored_event_reads_back_with_its_tags_value_and_time(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    events = [
        state(T0, "sensor.kitchen_temp", "21.5", numeric=21.5, area="Kitchen",
              device_class="temperature", unit="°C", attributes={"battery": 80}),
        state(T0 + timedelta(seconds=1), "binary_sensor.door", "on", old_state="off"),
        state(T0 + timedelta(seconds=2), "binary_sensor.door", "off", old_state="on"),
        # The attribute's type changes: a number, then text — two fields, no conflict.
        state(T0 + timedelta(seconds=3), "sensor.kitchen_temp", "22.0", numeric=22.0,
              area="Kitchen", device_class="temperature", unit="°C",
              attributes={"battery": "low"}),
    ]  # fmt: skip
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url, send="both")]
    ) as addon:
        addon.ingest(events)
        report = addon.wait_mirrored("vm")
        got = samples(victoria)

        kitchen = (("area", "Kitchen"), ("device_class", "temperature"), ("domain", "sensor"),
                   ("entity_id", "sensor.kitchen_temp"), ("event_type", "state_changed"),
                   ("unit", "°C"))  # fmt: skip
        assert got[("homeiq_value", kitchen)] == [
            (_ms(timedelta()), 21.5),
            (_ms(timedelta(seconds=3)), 22.0),
        ]
        assert got[("homeiq_attr_battery_num", kitchen)] == [(_ms(timedelta()), 80.0)]
        # A string field is no use on VictoriaMetrics (string_fields false): left out.
        assert ("homeiq_attr_battery_str", kitchen) not in got
        door = (("domain", "binary_sensor"), ("entity_id", "binary_sensor.door"))
        assert got[("homeiq_states_active", (*door, ("state", "on")))] == [
            (_ms(timedelta(seconds=1)), 1.0),
            (_ms(timedelta(seconds=2)), 0.0),
        ]
        assert got[("homeiq_states_active", (*door, ("state", "off")))] == [
            (_ms(timedelta(seconds=1)), 0.0),
            (_ms(timedelta(seconds=2)), 1.0),
        ]
        events_series = [v for (n, _), v in got.items() if n == "homeiq_events"]
        assert sum(len(v) for v in events_series) == len(events)
        # A point is a line (its fields become several series): one per event, and the
        # door's two changes each end one state and begin another.
        assert report["points_written"] == len(events) + 4
        assert report["points_refused"] == 0
        assert report["last_error"] is None
        assert report["last_success"] is not None

        # The hourly and daily rollups, built by a retention dry run, follow.
        status, _ = addon.call(
            "POST", "/api/v1/retention/run",
            {"dry_run": True, "now": (T0 + timedelta(days=2)).isoformat()},
        )  # fmt: skip
        assert status == 200

        def rollups() -> dict[Any, Any]:
            return {
                k: v for k, v in samples(victoria).items() if "hourly" in k[0] or "daily" in k[0]
            }

        wait_until(
            lambda: (
                (
                    "homeiq_daily_events",
                    (("domain", "binary_sensor"), ("entity_id", "binary_sensor.door")),
                )
                in rollups()
            ),
            30,
            "rollups",
        )
        got = rollups()
        temp = (("domain", "sensor"), ("entity_id", "sensor.kitchen_temp"))
        assert got[("homeiq_hourly_mean", temp)] == [(_ms(timedelta()), 21.75)]
        assert got[("homeiq_hourly_count", temp)] == [(_ms(timedelta()), 2.0)]
        assert got[("homeiq_daily_max", temp)] == [(_ms(timedelta()), 22.0)]
        assert ("homeiq_hourly_states_seconds", (*door, ("state", "off"))) in got


def test_a_wrong_token_shows_in_health_loses_nothing_and_the_right_one_drains(
    tmp_path: Path, victoria: VictoriaMetrics, guarded: VmAuth
) -> None:
    # Recent events: a target this little behind holds retention back.
    events = sensor_stream(3000, start=datetime.now(UTC) - timedelta(hours=2))
    with mirroring_addon(
        tmp_path / "data",
        mirror_targets=[vm_target("guarded", guarded.url, token="not-the-token")],
    ) as addon:
        addon.ingest(events)

        def refused() -> dict[str, Any]:
            status, health = addon.call("GET", "/api/v1/health")
            assert status == 200, health
            return dict(health["mirror"][0])

        wait_until(lambda: refused()["status"] == "auth_failed", 30, "auth_failed")
        target = refused()
        assert "token" in target["last_error"]
        assert "not-the-token" not in str(target), "the token is never shown"
        assert target["lag_events"] == len(events)
        assert target["retention_waits"] is True
        status, stats = addon.call("GET", "/api/v1/stats")
        assert stats["mirror"][0]["status"] == "auth_failed"
        status, answer = addon.call("POST", "/api/v1/mirror/targets/guarded/test")
        assert status == 502
        assert answer["error"] == "target_refused_access"
        assert not samples(victoria)

        addon.stop()
        addon.configure(mirror_targets=[vm_target("guarded", guarded.url, token=TOKEN)])
        addon.start()
        report = addon.wait_mirrored("guarded")
        assert report["points_written"] == len(events)
        assert report["last_error"] is None
        status, answer = addon.call("POST", "/api/v1/mirror/targets/guarded/test")
        assert status == 200, answer
        assert answer["reachable"] is True
    # The export right before the writes found no homeiq series; victoria-metrics may
    # answer that empty search from its cache for a moment after new series arrived
    # (seen twice under load: every point acknowledged, an empty export just after).
    expected = expected_values(events)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: value_samples(victoria) == expected, 30, "every value exported")
    assert value_samples(victoria) == expected


def test_through_vmagent_a_node_stopped_mid_stream_ends_with_each_point_once(
    tmp_path: Path, two_nodes: list[VictoriaMetrics], sharding_agent: VmAgent
) -> None:
    events = sensor_stream(20_000, entities=16)
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("agent", sharding_agent.url)]
    ) as addon:
        addon.ingest(events[:5000])
        two_nodes[0].stop()
        addon.ingest(events[5000:15_000])
        two_nodes[0].restart()
        addon.ingest(events[15_000:])
        addon.wait_mirrored("agent")
        wait_until(
            lambda: sum(value_samples(*two_nodes).values()) >= len(events), 60, "vmagent's queue"
        )
    assert value_samples(*two_nodes) == expected_values(events)


def test_the_engine_killed_mid_stream_ends_complete_each_point_once(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    events = sensor_stream(30_000)
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url)]
    ) as addon:
        addon.ingest(events[:10_000])
        victoria.kill()
        addon.ingest(events[10_000:20_000])
        wait_until(lambda: addon.targets()["vm"]["status"] == "unreachable", 30, "unreachable")
        victoria.restart()
        addon.ingest(events[20_000:])
        addon.wait_mirrored("vm")
    assert value_samples(victoria) == expected_values(events)


def test_rollups_the_engine_lost_after_acknowledging_them_are_written_again(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    events = sensor_stream(2000)  # ten sensors, 200 events each, in T0's first hour
    later = sensor_stream(100, start=T0 + timedelta(hours=5))
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url, send="both")]
    ) as addon:
        addon.ingest(events)
        events_written = addon.wait_mirrored("vm")["points_written"]
        status, answer = addon.call(
            "POST", "/api/v1/retention/run",
            {"dry_run": True, "now": (T0 + timedelta(days=2)).isoformat()},
        )  # fmt: skip
        assert status == 200, answer
        # An hourly and a daily rollup per sensor, acknowledged: the engine dies within
        # a second or two of that, before they were on its disk.
        wait_until(
            lambda: addon.targets()["vm"]["points_written"] >= events_written + 20,
            30,
            "the rollups acknowledged",
        )
        victoria.kill()
        addon.ingest(later)
        wait_until(lambda: addon.targets()["vm"]["status"] == "unreachable", 30, "unreachable")
        victoria.restart()
        addon.wait_mirrored("vm")

        def rollup_samples() -> dict[tuple[str, str], list[Any]]:
            return {
                (name, dict(labels)["entity_id"]): values
                for (name, labels), values in samples(victoria).items()
                if name.startswith(("homeiq_hourly", "homeiq_daily"))
            }

        sensors = {f"sensor.s{n}" for n in range(10)}
        expected = {
            (f"homeiq_{period}_{figure}", entity): [(_ms(timedelta()), value)]
            for period in ("hourly", "daily")
            for n, entity in enumerate(sorted(sensors, key=lambda e: int(e[8:])))
            for figure, value in [
                ("count", 200.0), ("events", 200.0), ("transitions", 199.0),
                ("min", float(n)), ("max", float(1990 + n)),
                ("sum", float(sum(range(n, 2000, 10)))),
                ("mean", sum(range(n, 2000, 10)) / 200),
            ]
        }  # fmt: skip
        wait_until(lambda: rollup_samples().keys() >= expected.keys(), 30, "every rollup again")
        assert rollup_samples() == expected
    assert value_samples(victoria) == expected_values(events + later)


def test_the_add_on_killed_mid_backfill_ends_complete_each_point_once(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    events = sensor_stream(60_000)
    with mirroring_addon(tmp_path / "data") as addon:
        addon.ingest(events)
        # The target arrives on a store with history: it backfills from the start.
        addon.stop()
        addon.configure(mirror_targets=[vm_target("vm", victoria.url)])
        addon.start()
        seen: list[str] = []

        def part_sent() -> bool:
            target = addon.targets()["vm"]
            seen.append(target["status"])
            return 0 < target["points_written"] < len(events)

        wait_until(part_sent, 60, "part of the backfill sent")
        assert "backfilling" in seen
        addon.kill()
        addon.start()
        report = addon.wait_mirrored("vm", timeout=120)
        assert report["points_written"] == len(events)
    assert value_samples(victoria) == expected_values(events)


@pytest.mark.parametrize(
    ("second_start", "shown"),
    [
        pytest.param({"enabled": False}, "disabled", id="target_disabled"),
        pytest.param({"mirror_max_lag_hours": 24}, "unreachable", id="target_past_the_bound"),
        pytest.param({"send": "rollups"}, "unreachable", id="target_of_rollups_only"),
    ],
)
def test_retention_keeps_what_a_live_target_has_not_received(
    tmp_path: Path, nowhere: int, second_start: dict[str, Any], shown: str
) -> None:
    # Nothing answers there: the target receives nothing and stays within its bound.
    down = vm_target("down", f"http://127.0.0.1:{nowhere}")
    options: dict[str, Any] = {"raw_retention_days": 1, "mirror_max_lag_hours": 1_000_000}
    events = [
        state(T0 + timedelta(minutes=10 * i), "sensor.s", f"{i}.0", numeric=float(i))
        for i in range(3 * 144)
    ]
    run = {"dry_run": False, "now": (T0 + timedelta(days=5)).isoformat()}
    with mirroring_addon(tmp_path / "data", mirror_targets=[down], **options) as addon:
        addon.ingest(events)
        wait_until(lambda: addon.targets()["down"]["status"] == "unreachable", 30, "down")
        assert addon.targets()["down"]["retention_waits"] is True

        status, report = addon.call("POST", "/api/v1/retention/run", run)
        assert status == 200, report
        assert report["totals"]["raw_events"] == 0
        assert addon.row_count() == len(events)

        addon.stop()
        if "mirror_max_lag_hours" not in second_start:
            down = {**down, **second_start}
        else:
            options.update(second_start)
        addon.configure(mirror_targets=[down], **options)
        addon.start()
        wait_until(lambda: addon.targets()["down"]["status"] == shown, 30, shown)
        assert addon.targets()["down"]["retention_waits"] is False

        status, report = addon.call("POST", "/api/v1/retention/run", run)
        assert status == 200, report
        assert report["totals"]["raw_events"] == len(events)
        assert addon.row_count() == 0


def test_a_backfill_sends_everything_again_and_the_engine_keeps_it_once(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    events = sensor_stream(5000)
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url)]
    ) as addon:
        addon.ingest(events)
        addon.wait_mirrored("vm")
        status, target = addon.call("POST", "/api/v1/mirror/targets/vm/backfill")
        assert status == 202, target
        assert target["name"] == "vm"
        assert target["lag_events"] == len(events)
        report = addon.wait_mirrored("vm")
        assert report["points_written"] == 2 * len(events)
        status, answer = addon.call("POST", "/api/v1/mirror/targets/nowhere/backfill")
        assert status == 404, answer
    assert value_samples(victoria) == expected_values(events)


async def test_points_a_target_refuses_are_counted_and_the_rest_arrives(
    tmp_path: Path, influx_answers: tuple[str, list[Answer], list[str]]
) -> None:
    url, answers, taken = influx_answers

    def refuse_the_broken_sensor(raw: bytes) -> web.Response:
        if b"entity_id=sensor.broken" in raw:
            return influx_error(400, "invalid", "partial write: field type conflict")
        return web.Response(status=204)

    answers.append(refuse_the_broken_sensor)
    events = sensor_stream(200, entities=4)
    broken = [state(T0 + timedelta(seconds=10 * i + 5), "sensor.broken", "1.0", numeric=1.0)
              for i in range(3)]  # fmt: skip
    with mirroring_addon(tmp_path / "data", mirror_targets=[vm_target("influx", url)]) as addon:
        await asyncio.to_thread(addon.ingest, events + broken)
        report = await asyncio.to_thread(addon.wait_mirrored, "influx")
    assert report["points_refused"] == len(broken)
    assert report["points_written"] == len(events)
    assert "3 point(s) refused" in report["last_error"]
    assert "field type conflict" in report["last_error"]
    assert len(taken) == len(events)
    assert not [line for line in taken if "sensor.broken" in line]


async def test_an_overloaded_target_is_waited_for_as_its_retry_after_says(
    tmp_path: Path, influx_answers: tuple[str, list[Answer], list[str]]
) -> None:
    url, answers, taken = influx_answers
    refusals: list[float] = []
    refused_twice = asyncio.Event()

    def overloaded(raw: bytes) -> web.Response:
        refusals.append(time.monotonic())
        if len(refusals) >= 2:
            refused_twice.set()
        return influx_error(429, "too many requests", "slow down", **{"Retry-After": "2"})

    answers.append(overloaded)
    events = sensor_stream(100)
    with mirroring_addon(tmp_path / "data", mirror_targets=[vm_target("influx", url)]) as addon:
        await asyncio.to_thread(addon.ingest, events)
        await asyncio.wait_for(refused_twice.wait(), 30)
        assert (await asyncio.to_thread(addon.targets))["influx"]["status"] == "unreachable"
        answers.append(lambda raw: web.Response(status=204))
        report = await asyncio.to_thread(addon.wait_mirrored, "influx")
    assert refusals[1] - refusals[0] >= 1.9, "the second try waited the 2 s asked for"
    assert report["points_written"] == len(events)
    assert len(taken) == len(events)


def test_each_target_receives_what_its_own_filters_take(
    tmp_path: Path, two_nodes: list[VictoriaMetrics]
) -> None:
    sensors = sensor_stream(200, entities=20)
    lights = [
        state(T0 + timedelta(seconds=i, milliseconds=500), f"light.l{i % 3}",
              "on" if i % 2 else "off")
        for i in range(30)
    ]  # fmt: skip
    targets = [
        vm_target("lights", two_nodes[0].url, include_domains="light"),
        vm_target("no_s1x", two_nodes[1].url, exclude_entities="sensor.s1*, light.l2"),
    ]
    with mirroring_addon(tmp_path / "data", mirror_targets=targets) as addon:
        addon.ingest(sensors + lights)
        addon.wait_mirrored("lights")
        addon.wait_mirrored("no_s1x")

    def entities(node: VictoriaMetrics) -> set[str]:
        return {dict(labels)["entity_id"] for _, labels in samples(node)}

    assert entities(two_nodes[0]) == {"light.l0", "light.l1", "light.l2"}
    kept = {f"sensor.s{n}" for n in range(20) if not str(n).startswith("1")}
    assert entities(two_nodes[1]) == kept | {"light.l0", "light.l1"}


def test_after_a_backup_is_restored_new_events_still_arrive(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    first, dropped, later = (sensor_stream(1000, start=T0 + timedelta(days=n)) for n in range(3))
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url)]
    ) as addon:
        addon.ingest(first)
        addon.wait_mirrored("vm")
        status, backup = addon.call("POST", "/api/v1/backups")
        assert status == 201, backup
        addon.ingest(dropped)
        addon.wait_mirrored("vm")
        status, answer = addon.call("POST", f"/api/v1/backups/{backup['name']}/restore")
        assert status == 200, answer
        # The events after the backup are gone from the store; new ones take their ids.
        addon.ingest(later)
        addon.wait_mirrored("vm")
    assert value_samples(victoria) == expected_values(first + dropped + later)


def test_a_restore_while_events_stream_in_loses_no_event_stored_after_it(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    """The target mirrors a steady stream while a backup is restored in the middle of
    it (three times): every event the store holds afterwards reaches the target, once. (The events
    after the restore reuse the ids of those it dropped: a cursor of the replaced
    database, committed into the restored one, would pass them.)"""
    first = sensor_stream(2000)
    stream = iter(sensor_stream(200_000, start=T0 + timedelta(days=1)))
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_ingesting(addon: MirroringAddon) -> None:
        try:
            while not stop.is_set():
                addon.ingest([next(stream) for _ in range(50)])
        except BaseException as error:  # shown by the assertion below
            errors.append(error)

    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url)]
    ) as addon:
        addon.ingest(first)
        addon.wait_mirrored("vm")
        status, backup = addon.call("POST", "/api/v1/backups")
        assert status == 201, backup
        ingesting = threading.Thread(target=keep_ingesting, args=(addon,))
        ingesting.start()
        try:
            # Three times: the stale commit needs a chunk in flight at the swap.
            for _ in range(3):
                enough = addon.row_count() + 2000
                wait_until(lambda n=enough: addon.row_count() > n, 30, "events after it")
                status, answer = addon.call("POST", f"/api/v1/backups/{backup['name']}/restore")
                assert status == 200, answer
            time.sleep(1)
        finally:
            stop.set()
            ingesting.join(30)
        assert not ingesting.is_alive(), "the ingest stream stopped"
        assert not errors, errors
        addon.wait_mirrored("vm")
        stored = Counter(
            (entity, us // 1000, value)
            for entity, us, value in addon.query(
                "SELECT entity_id, time_fired, numeric_value FROM events_enriched"
            )
        )
        assert sum(stored.values()) > len(first), "events were stored after the restore"
    mirrored = value_samples(victoria)
    assert max(mirrored.values()) == 1, "each point once"
    assert not stored - mirrored, "every stored event reached the target"
