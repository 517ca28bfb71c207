"""Store: group commit, per-job savepoints, migrations, schema version refusal."""

from __future__ import annotations

import asyncio
from pathlib import Path
import sqlite3
from typing import Any

import orjson
import pytest

from homeiq_addon.ingest.outcomes import Accepted
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.store.db import Store, StoreClosed
from homeiq_addon.store.migrations import MIGRATIONS, SchemaTooNew
from tests.addon.factory import batch, state_event


async def test_a_failing_job_rolls_back_only_itself(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    ingestor = Ingestor(store)

    def body(*events: dict[str, Any]) -> bytes:
        return orjson.dumps(batch(list(events)))

    def boom(conn: sqlite3.Connection) -> None:
        # Writes a new dimension row and an event, then fails: both must vanish.
        ingestor.ingest(conn, body(state_event(0, entity_id="sensor.ghost")))
        raise RuntimeError("job failed")

    try:
        jobs = [
            store.write(lambda c, i=i: ingestor.ingest(c, body(state_event(i))))
            for i in range(1, 4)
        ]
        jobs.insert(1, store.write(boom))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert isinstance(results[1], RuntimeError)
        assert [r.accepted for r in results if isinstance(r, Accepted)] == [1, 1, 1]
        # The id cache was dropped with the rollback, so this re-creates sensor.ghost.
        await store.write(
            lambda c: ingestor.ingest(c, body(state_event(9, entity_id="sensor.ghost")))
        )
        rows = await store.read(
            lambda c: (
                c.execute("SELECT COUNT(*) FROM events").fetchone()[0],
                c.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0],
                c.execute("SELECT SUM(events) FROM stat_minute").fetchone()[0],
                c.execute(
                    "SELECT COUNT(*) FROM events e JOIN entities n ON n.id = e.entity_ref"
                    " WHERE n.entity_id = 'sensor.ghost'"
                ).fetchone()[0],
            )
        )
        assert rows == (4, 4, 4, 1)
    finally:
        await store.close()


async def test_migrations_are_applied_once_and_newer_schema_is_refused(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    await store.close()
    reopened = await Store.open(tmp_path)  # nothing left to apply
    assert reopened.schema_version == len(MIGRATIONS)
    await reopened.close()
    conn = sqlite3.connect(tmp_path / "homeiq.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer than this add-on"):
        await Store.open(tmp_path)


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.close()
    with pytest.raises(StoreClosed, match="closed"):
        await store.write(lambda c: None)


async def test_the_writer_keeps_a_small_page_cache_after_the_migrations(tmp_path: Path) -> None:
    """The writer's page cache is most of the add-on's memory that grows under load;
    migrations (sorting whole tables) had the default, the readers keep it."""
    for _ in range(2):  # a new file, then an existing one
        store = await Store.open(tmp_path)
        try:
            writer = await store.write(lambda c: c.execute("PRAGMA cache_size").fetchone()[0])
            reader = await store.read(lambda c: c.execute("PRAGMA cache_size").fetchone()[0])
        finally:
            await store.close()
        assert (writer, reader) == (-2000, -8000)  # KB
