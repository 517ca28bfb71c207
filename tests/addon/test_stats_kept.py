"""The 24h and 7d stats stay exact while the past hours' sums are kept between requests
(store/hour_sums.py): as the current hour fills, when events arrive late for an older
hour, after a retention purge and after a restore, indexed or not yet; and so do the
latency percentiles from the kept lists (status/latencies.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
import sqlite3
import time
from typing import Any

import aiohttp
import orjson
import pytest

from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.status.latencies import LatencyWindows
from homeiq_addon.status.service import ingest_health
from homeiq_addon.store.db import Store
from tests.addon.factory import batch, state_event
from tests.addon.retention_data import Api, event
from tests.conftest import AddonProcess


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


def events(entity_id: str, n: int, ago: timedelta) -> list[dict[str, Any]]:
    t = datetime.now(UTC) - ago
    return [event(t + timedelta(milliseconds=k), entity_id, str(k)) for k in range(n)]


async def all_indexed(server: AddonProcess) -> None:
    """Wait until the writer has indexed every event (it does when idle)."""
    sql = (
        "SELECT (SELECT value FROM counters WHERE name = 'settled')"
        " = COALESCE((SELECT MAX(id) FROM events), 0)"
    )
    deadline = time.monotonic() + 60
    while not server.query(sql)[0][0]:
        assert time.monotonic() < deadline, "the idle writer never indexed the events"
        await asyncio.sleep(0.05)


async def breakdown(api: Api, periods: tuple[str, ...] = ("24h", "7d", "24h")) -> dict[str, Any]:
    """What the stats say by entity, domain and event type (the same for each period
    here; the second 24h answer comes from the sums the first one kept)."""
    answers = []
    for period in periods:
        status, stats = await api.call("GET", f"/api/v1/stats?period={period}")
        assert status == 200, stats
        metrics = stats["metrics"]
        answers.append(
            {
                "entities": {e["entity_id"]: e["count"] for e in metrics["top_entities"]},
                "domains": metrics["by_domain"],
                "types": metrics["by_event_type"],
            }
        )
    assert all(answer == answers[0] for answer in answers)
    return answers[0]


def expect(**counts: int) -> dict[str, Any]:
    """The breakdown of ``sensor_a=3, ...`` (sensor.a: 3 events, ...), most first."""
    entities = {name.replace("_", ".", 1): n for name, n in counts.items()}
    domains: dict[str, int] = {}
    for entity_id, n in entities.items():
        domain = entity_id.split(".")[0]
        domains[domain] = domains.get(domain, 0) + n
    return {
        "entities": entities,
        "domains": domains,
        "types": {"state_changed": sum(counts.values())},
    }


async def test_kept_sums_follow_new_and_late_events(api: Api, addon_server: AddonProcess) -> None:
    await api.ingest(events("sensor.a", 20, timedelta(hours=5)))
    await api.ingest(events("sensor.b", 10, timedelta(hours=2)))
    await api.ingest(events("light.c", 5, timedelta(minutes=3)))
    assert await breakdown(api) == expect(sensor_a=20, sensor_b=10, light_c=5)
    await all_indexed(addon_server)
    assert await breakdown(api) == expect(sensor_a=20, sensor_b=10, light_c=5)

    # Late for an hour the kept sums cover: counted before and after the store indexes.
    await api.ingest(events("sensor.d", 7, timedelta(hours=4)))
    await api.ingest(events("sensor.b", 3, timedelta(hours=2)))
    assert await breakdown(api) == expect(sensor_a=20, sensor_b=13, light_c=5, sensor_d=7)
    await all_indexed(addon_server)
    assert await breakdown(api) == expect(sensor_a=20, sensor_b=13, light_c=5, sensor_d=7)

    # The current hour takes more (it is read again; the past hours are not).
    await api.ingest(events("light.c", 4, timedelta(seconds=1)))
    await all_indexed(addon_server)
    assert await breakdown(api) == expect(sensor_a=20, sensor_b=13, light_c=9, sensor_d=7)

    # Older than a day: in the 7d stats only.
    await api.ingest(events("sensor.old", 6, timedelta(days=3)))
    await all_indexed(addon_server)
    status, week = await api.call("GET", "/api/v1/stats?period=7d")
    assert status == 200
    assert week["metrics"]["by_domain"] == {"sensor": 46, "light": 9}
    day = expect(sensor_a=20, sensor_b=13, light_c=9, sensor_d=7)
    assert await breakdown(api, ("24h", "24h")) == day


async def test_a_restore_brings_its_own_counts(api: Api, addon_server: AddonProcess) -> None:
    def index_runs() -> int:
        return int(addon_server.query("SELECT value FROM counters WHERE name = 'settles'")[0][0])

    await api.ingest(events("sensor.a", 12, timedelta(hours=3)))
    await all_indexed(addon_server)
    status, first = await api.call("POST", "/api/v1/backups")
    assert status == 201, first
    await api.ingest(events("sensor.b", 8, timedelta(hours=5)))
    await all_indexed(addon_server)
    status, second = await api.call("POST", "/api/v1/backups")
    assert status == 201, second
    runs_in_second = index_runs()
    assert await breakdown(api) == expect(sensor_a=12, sensor_b=8)

    status, answer = await api.call("POST", f"/api/v1/backups/{first['name']}/restore")
    assert status == 200, answer
    assert await breakdown(api) == expect(sensor_a=12)
    # Another past hour fills on the restored store, in as many index runs as the second
    # backup holds: only the restore itself tells the kept sums from that backup's.
    await api.ingest(events("sensor.c", 5, timedelta(hours=4)))
    await all_indexed(addon_server)
    assert index_runs() == runs_in_second
    assert await breakdown(api) == expect(sensor_a=12, sensor_c=5)
    status, answer = await api.call("POST", f"/api/v1/backups/{second['name']}/restore")
    assert status == 200, answer
    assert await breakdown(api) == expect(sensor_a=12, sensor_b=8)
    # The restored store goes on counting.
    await api.ingest(events("sensor.b", 1, timedelta(hours=3)))
    await all_indexed(addon_server)
    assert await breakdown(api) == expect(sensor_a=12, sensor_b=9)


async def test_a_purge_leaves_the_counts_of_what_was_ingested(
    api: Api, addon_server: AddonProcess
) -> None:
    await api.ingest(events("sensor.a", 9, timedelta(hours=20)))
    await api.ingest(events("sensor.b", 4, timedelta(minutes=30)))
    await all_indexed(addon_server)
    before = await breakdown(api)
    assert before == expect(sensor_a=9, sensor_b=4)
    status, _ = await api.call(
        "PUT",
        "/api/v1/retention/policies/default",
        {"raw_days": 0.5, "hourly_days": 365, "daily_days": "forever"},
    )
    assert status == 200
    await api.run(datetime.now(UTC), dry_run=False)
    status, stats = await api.call("GET", "/api/v1/stats?period=24h")
    assert status == 200
    # The purge deleted the raw events older than half a day; the stats count what the
    # period saw arrive, as before the purge.
    assert stats["store"]["events_stored"] == 4
    assert await breakdown(api) == before
    await api.ingest(events("sensor.a", 1, timedelta(hours=20)))
    await all_indexed(addon_server)
    assert await breakdown(api) == expect(sensor_a=10, sensor_b=4)


def test_kept_latencies_give_the_percentiles_of_a_fresh_read(tmp_path: Path) -> None:
    """The latency percentiles from the kept lists (status/latencies.py) equal those read
    afresh, as batches arrive and as older ones leave the window."""
    store = Store.open_sync(tmp_path)
    ingestor = Ingestor(store)
    kept = LatencyWindows()

    def ingest(n: int) -> None:
        for _ in range(n):
            body = orjson.dumps(batch([state_event(0)]))
            store.submit(lambda c, b=body: ingestor.ingest(c, b, started=0.0)).result()

    def health(windows: LatencyWindows, now_us: int, minutes: int) -> dict[str, Any]:
        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            return ingest_health(conn, now_us, minutes, windows, store.hour_sums.generation())

        return store.read_sync(read)

    def received() -> list[int]:
        rows = store.read_sync(lambda c: c.execute("SELECT received_us FROM batches").fetchall())
        return sorted(r[0] for r in rows)

    try:
        ingest(30)
        first = received()
        # The window's start moves over the first batches while new ones come.
        for k in (0, 0, 5, 12, 12, 29):
            now_us = first[k] + 60_000_000  # a window of one minute starts at batch k
            for minutes in (1, 60):
                answer = health(kept, now_us, minutes)
                assert answer == health(LatencyWindows(), now_us, minutes)
            assert answer["batches_accepted"] == len(received())  # the hour: all of them
            in_minute = health(kept, now_us, 1)["batches_accepted"]
            assert in_minute == len([t for t in received() if t > first[k]])
            ingest(3)
    finally:
        store.close_sync()
