"""Attribute sets are deleted only when no event uses them, even one stored mid-way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import sqlite3

import orjson
import pytest

from homeiq_addon.backups.service import create_backup, restore_into
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.retention import orphans, source
from homeiq_addon.store.db import Store
from tests.addon.factory import batch, state_event


class _Live:
    """A store with the ingest wired to it as the app wires it."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open_sync(path)
        self.ingestor = Ingestor(self.store)

    def ingest(self, events: list[dict[str, object]]) -> None:
        body = orjson.dumps(batch(events))
        self.store.submit(lambda c: self.ingestor.ingest(c, body)).result()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[_Live]:
    live = _Live(tmp_path)
    yield live
    live.store.close_sync()


def _attributes_of(conn: sqlite3.Connection) -> list[object]:
    rows = conn.execute("SELECT a.json FROM events e JOIN attributes a ON a.id = e.attributes_ref")
    return [orjson.loads(r[0]) for r in rows]


async def test_a_set_reused_between_scan_and_delete_survives(live: _Live) -> None:
    store = live.store
    live.ingest([state_event(i, attributes={"k": i}) for i in range(20)])
    # Retention purged every event: all 20 sets are now unused ...
    await store.write(lambda c: source.delete_events(c, list(range(1, 21))))
    used = await orphans.used_attributes(store)
    assert used is not None
    # ... but before the delete steps run, a new event reuses one (from the cache).
    live.ingest([state_event(100, attributes={"k": 7})])

    assert await orphans.delete_unused(store, used) == 19
    live.ingest([state_event(101, attributes={"k": 3})])  # gone: stored anew
    rows = await store.read(_attributes_of)
    assert sorted(rows, key=repr) == [{"k": 3}, {"k": 7}]
    count = await store.read(lambda c: c.execute("SELECT COUNT(*) FROM attributes").fetchone())
    assert count == (2,)


async def test_nothing_is_deleted_after_a_restore_swapped_the_database(
    live: _Live, tmp_path: Path
) -> None:
    store = live.store
    live.ingest([state_event(i, attributes={"k": i}) for i in range(5)])
    backup = tmp_path / "backups" / create_backup(store, tmp_path)["name"]
    live.ingest([state_event(9, attributes={"k": 9})])  # event id 6
    await store.write(lambda c: source.delete_events(c, list(range(1, 6))))
    used = await orphans.used_attributes(store)  # no event uses the first 5 sets ...
    assert used is not None
    # ... but the backup brings their events back (ids 1-5, below the newest seen)
    # before the delete steps run.
    await store.write(lambda c: restore_into(c, backup, store), transaction=False)
    assert await orphans.delete_unused(store, used) == 0
    assert len(await store.read(_attributes_of)) == 5
