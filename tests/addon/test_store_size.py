"""One database size everywhere, and a write-ahead log that shrinks once ingest is idle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from tests.addon.factory import batch, state_event
from tests.addon.test_ingest import get, post
from tests.conftest import AddonProcess

MB = 1024 * 1024


def _on_disk(data_dir: Path) -> tuple[int, int]:
    """(database file, write-ahead log) sizes in bytes."""
    db = data_dir / "homeiq.db"
    wal = data_dir / "homeiq.db-wal"
    return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


async def _ingest_burst(server: AddonProcess, batches: int, size: int) -> None:
    """A catch-up after an outage: many full batches back to back."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for b in range(batches):
        events = []
        for i in range(size):
            event = state_event(b * size + i, at=start, entity_id=f"sensor.s{i % 50}")
            event["attributes"] = {"payload": f"{b}-{i}-" + "y" * 300}  # each one new
            events.append(event)
        status, _ = await post(server, batch(events))
        assert status == 200


async def test_wal_is_truncated_after_a_burst(addon_server: AddonProcess) -> None:
    await _ingest_burst(addon_server, batches=12, size=1000)
    _, wal = _on_disk(addon_server.data_dir)
    assert wal > 4 * MB  # the catch-up grew it

    deadline = asyncio.get_running_loop().time() + 20
    while _on_disk(addon_server.data_dir)[1] > MB // 4:
        assert asyncio.get_running_loop().time() < deadline, "the WAL did not shrink"
        await asyncio.sleep(0.2)
    assert addon_server.row_count() == 12_000


async def test_every_size_is_file_plus_wal(addon_server: AddonProcess) -> None:
    await _ingest_burst(addon_server, batches=2, size=500)
    async with aiohttp.ClientSession(headers=addon_server.headers) as session:

        async def sizes() -> tuple[int, int, int]:
            async with session.get(f"{addon_server.url}/api/v1/health") as resp:
                health = (await resp.json())["db_size_bytes"]
            _, stats = await get(addon_server, "/api/v1/stats?period=1h")
            async with session.get(f"{addon_server.url}/api/v1/retention/stats") as resp:
                panel = (await resp.json())["db_size_bytes"]
            return health, stats["store"]["db_size_bytes"], panel

        # Whatever the WAL holds at this moment, all three answers count it.
        for _ in range(50):
            before = sum(_on_disk(addon_server.data_dir))
            health, stats, panel = await sizes()
            if before == sum(_on_disk(addon_server.data_dir)):
                break
            await asyncio.sleep(0.5)
        assert health == stats == panel == before
