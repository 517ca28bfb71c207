"""Backups: consistent while ingesting, restorable, corrupt or foreign files rejected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
import sqlite3
from typing import Any

import aiohttp
import pytest

from homeiq_addon.backups.service import prune
from tests.addon.retention_data import T0, Api, event
from tests.conftest import AddonProcess


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


def snapshot(path: Path) -> dict[str, Any]:
    """What a client could tell apart: every event, the counters and accepted batches."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "events": conn.execute(
                "SELECT time_fired, entity_id, state FROM events_enriched ORDER BY id"
            ).fetchall(),
            "counter": conn.execute("SELECT value FROM counters WHERE name='events'").fetchone(),
            "batches": conn.execute("SELECT batch_id, accepted FROM batches ORDER BY 1").fetchall(),
        }
    finally:
        conn.close()


def batch_of(i: int, n: int = 250) -> list[dict[str, Any]]:
    t = T0 + timedelta(minutes=i)
    return [
        event(t + timedelta(milliseconds=k), "sensor.meter", str(k), numeric=float(k))
        for k in range(n)
    ]


async def test_backup_while_ingesting_then_restore_equals_the_snapshot(
    api: Api, addon_server: AddonProcess
) -> None:
    for i in range(10):
        await api.ingest(batch_of(i))
    stop = asyncio.Event()

    async def ingest_until_stopped() -> int:
        i = 100
        while not stop.is_set():
            await api.ingest(batch_of(i))
            i += 1
        return i - 100

    writer = asyncio.create_task(ingest_until_stopped())
    await asyncio.sleep(0.2)
    status, info = await api.call("POST", "/api/v1/backups")
    await asyncio.sleep(0.2)
    stop.set()
    assert await writer > 0
    assert status == 201, info
    backup = addon_server.data_dir / "backups" / info["name"]
    snap = snapshot(backup)
    # Consistent: whole batches only, and the counter agrees with the rows.
    assert len(snap["events"]) % 250 == 0
    assert snap["counter"] == (len(snap["events"]),)
    assert sum(n for _, n in snap["batches"]) == len(snap["events"])
    assert addon_server.row_count() > len(snap["events"])  # ingest went on after it

    before = snapshot(addon_server.data_dir / "homeiq.db")
    status, answer = await api.call("POST", f"/api/v1/backups/{info['name']}/restore")
    assert status == 200, answer
    assert answer["events_stored"] == len(snap["events"])
    live = snapshot(addon_server.data_dir / "homeiq.db")
    assert live == snap
    # What the restore replaced was kept first, so the restore can be undone.
    previous = answer["previous_data"]
    assert previous.startswith("homeiq-before-restore-")
    assert snapshot(addon_server.data_dir / "backups" / previous) == before

    # The store keeps working on the restored data (its id caches were reset).
    await api.ingest([event(T0 + timedelta(days=1), "sensor.new_after_restore", "1")])
    _, events = await api.call("GET", "/api/v1/events?entity_id=sensor.new_after_restore")
    assert len(events["events"]) == 1
    assert addon_server.row_count() == len(snap["events"]) + 1


async def test_restore_can_be_undone_and_recounts_the_recent_stats(api: Api) -> None:
    now = datetime.now(UTC)
    last_hour = [
        event(now - timedelta(minutes=2, seconds=k), "sensor.recent", str(k)) for k in range(30)
    ]
    await api.ingest(last_hour[:10])
    _, first = await api.call("POST", "/api/v1/backups")
    await api.ingest(last_hour[10:])

    async def stats_15m() -> tuple[int, dict[str, int]]:
        """Events in the period, and the per-entity breakdown (counted in memory)."""
        status, stats = await api.call("GET", "/api/v1/stats?period=15m")
        assert status == 200, stats
        metrics = stats["metrics"]
        return metrics["events"], {e["entity_id"]: e["count"] for e in metrics["top_entities"]}

    assert await stats_15m() == (30, {"sensor.recent": 30})
    status, answer = await api.call("POST", f"/api/v1/backups/{first['name']}/restore")
    assert status == 200, answer
    assert await stats_15m() == (10, {"sensor.recent": 10})
    status, undone = await api.call("POST", f"/api/v1/backups/{answer['previous_data']}/restore")
    assert status == 200, undone
    assert undone["events_stored"] == 30
    assert await stats_15m() == (30, {"sensor.recent": 30})
    _, listing = await api.call("GET", "/api/v1/backups")
    names = {b["name"] for b in listing["backups"]}
    assert {first["name"], answer["previous_data"], undone["previous_data"]} <= names


def _corrupt_copy(source: Path, target: Path) -> None:
    data = bytearray(source.read_bytes())
    # Scribble over the middle pages: the header still says "SQLite format 3".
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xa5" * 8192
    target.write_bytes(bytes(data))


def _foreign(target: Path) -> None:
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


def _newer(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("garbage", "garbage.db: not a SQLite database"),
        ("truncated", "integrity check failed"),
        ("corrupt", "integrity check failed"),
        ("foreign", "not a HomeIQ database"),
        ("newer", "schema version 99 is newer"),
    ],
)
async def test_bad_backup_is_rejected_and_live_data_untouched(
    api: Api, addon_server: AddonProcess, kind: str, message: str
) -> None:
    for i in range(40):
        await api.ingest(batch_of(i))
    status, good = await api.call("POST", "/api/v1/backups")
    assert status == 201
    folder = addon_server.data_dir / "backups"
    source = folder / good["name"]
    bad = folder / f"{kind}.db"
    if kind == "garbage":
        bad.write_bytes(b"this is not a database\n" * 500)
    elif kind == "truncated":
        bad.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    elif kind == "corrupt":
        _corrupt_copy(source, bad)
    elif kind == "foreign":
        _foreign(bad)
    else:
        _newer(source, bad)
    await api.ingest(batch_of(1000))  # newer than the backup: must survive the attempt
    before = snapshot(addon_server.data_dir / "homeiq.db")

    status, answer = await api.call("POST", f"/api/v1/backups/{kind}.db/restore")
    assert status == 422, answer
    assert answer["error"] == "invalid_backup"
    assert message in answer["message"]
    assert snapshot(addon_server.data_dir / "homeiq.db") == before


async def test_list_and_delete(api: Api, addon_server: AddonProcess) -> None:
    names = []
    for _ in range(2):
        status, info = await api.call("POST", "/api/v1/backups")
        assert status == 201
        names.append(info["name"])
    _, listing = await api.call("GET", "/api/v1/backups")
    assert {b["name"] for b in listing["backups"]} == set(names)
    assert all(b["size_bytes"] > 0 for b in listing["backups"])

    assert (await api.call("DELETE", f"/api/v1/backups/{names[0]}"))[0] == 200
    _, listing = await api.call("GET", "/api/v1/backups")
    assert [b["name"] for b in listing["backups"]] == [names[1]]
    status, answer = await api.call("DELETE", f"/api/v1/backups/{names[0]}")
    assert status == 404
    assert names[0] in answer["message"]
    status, answer = await api.call("POST", "/api/v1/backups/..%2Ftoken/restore")
    assert status in (400, 404)
    assert (addon_server.data_dir / "token").exists()


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "backups"
    folder.mkdir()
    for i in range(5):
        path = folder / f"homeiq-{i}.db"
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    assert sorted(prune(tmp_path, 2)) == ["homeiq-0.db", "homeiq-1.db", "homeiq-2.db"]
    assert sorted(p.name for p in folder.iterdir()) == ["homeiq-3.db", "homeiq-4.db"]
