"""Reads by entity and hourly stats see every event, indexed (store/deferred_index.py) or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import sqlite3
import time
from typing import Any

import msgspec
import orjson
import pytest

from homeiq_addon.history import queries
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.retention import source
from homeiq_addon.status.latencies import LatencyWindows
from homeiq_addon.status.service import compute_stats
from homeiq_addon.store import deferred_index
from homeiq_addon.store.db import Store
from homeiq_addon.store.hour_sums import HourSums
from homeiq_addon.store.ids import EVENT_DOMAIN_REF
from homeiq_addon.store.memory_counts import LastHourCounts
from homeiq_addon.store.migrations import MIGRATIONS, m001_events
from homeiq_addon.store.retention_tables import migrate_retention
from tests.addon.factory import BASE, batch, state_event, write_into

KITCHEN = "sensor.kitchen"
HALL = "sensor.hall"
FAR = 2**62


class _Store:
    """A real store on a file, with the automatic catch-up off unless asked for."""

    def __init__(self, path: Path, *, auto: bool = False) -> None:
        self.store = Store.open_sync(path)
        self.store.indexing = auto
        self.ingestor = Ingestor(self.store)

    def ingest(self, entity_id: str, seconds: range) -> None:
        body = orjson.dumps(batch([state_event(i, entity_id=entity_id) for i in seconds]))
        self.store.submit(lambda c: self.ingestor.ingest(c, body)).result()

    def index_new_events(self) -> None:
        self.store.index_now().result()

    def read(self, fn: Any) -> Any:
        return self.store.read_sync(fn)

    def watermark_and_top(self) -> tuple[int, int]:
        return self.read(  # type: ignore[no-any-return]
            lambda c: (
                deferred_index.watermark(c),
                c.execute("SELECT MAX(id) FROM events").fetchone()[0],
            )
        )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[_Store]:
    s = _Store(tmp_path)
    yield s
    s.store.close_sync()


def _times(events: list[dict[str, Any]], key: str = "time_fired") -> list[str]:
    return [e[key] for e in events]


def test_reads_join_the_indexed_events_and_the_newer_tail(db: _Store) -> None:
    db.ingest(KITCHEN, range(0, 20, 2))
    db.ingest(HALL, range(1, 20, 2))
    db.index_new_events()
    db.ingest(KITCHEN, range(20, 30))  # not indexed yet
    indexed, top = db.watermark_and_top()
    assert 0 < indexed < top  # both parts are really in play

    history = db.read(lambda c: queries.raw_history(c, KITCHEN, 0, FAR, 1000))
    assert len(history) == 20
    assert _times(history, "time") == sorted(_times(history, "time"))

    # Newest first, three per page, crossing from the tail into the indexed part.
    pages: list[dict[str, Any]] = []
    after: tuple[int, int] | None = None
    more = True
    while more:
        f = queries.EventFilter(entity_id=KITCHEN, limit=3, after=after)
        events, after = db.read(lambda c, f=f: queries.list_events(c, f))
        pages += events
        more = after is not None
    assert len(pages) == 20
    assert {e["entity_id"] for e in pages} == {KITCHEN}
    assert _times(pages) == sorted(_times(pages), reverse=True)

    assert db.read(lambda c: source.previous_state(c, KITCHEN, FAR)) == (True, history[-1]["state"])
    first = db.read(lambda c: source.oldest_raw(c, KITCHEN))
    assert first is not None
    later = db.read(lambda c: source.oldest_raw(c, HALL))
    assert later is not None and later > first


def test_the_newest_events_only_in_the_tail_are_found(db: _Store) -> None:
    db.ingest(KITCHEN, range(5))
    indexed, top = db.watermark_and_top()
    assert indexed == 0 and top == 5
    history = db.read(lambda c: queries.raw_history(c, KITCHEN, 0, FAR, 1000))
    assert len(history) == 5
    assert db.read(lambda c: source.previous_state(c, KITCHEN, FAR)) == (True, history[-1]["state"])


def test_deleting_the_newest_events_never_mixes_up_new_ones(db: _Store) -> None:
    db.ingest(KITCHEN, range(10))
    db.index_new_events()
    # Retention deletes the newest five: SQLite would hand their ids out again.
    db.store.submit(lambda c: source.delete_events(c, [6, 7, 8, 9, 10])).result()
    assert db.watermark_and_top() == (5, 5)
    db.ingest(HALL, range(100, 105))  # ids 6..10 again, another entity
    kitchen = db.read(lambda c: queries.raw_history(c, KITCHEN, 0, FAR, 1000))
    hall = db.read(lambda c: queries.raw_history(c, HALL, 0, FAR, 1000))
    assert (len(kitchen), len(hall)) == (5, 5)
    db.index_new_events()
    kitchen = db.read(lambda c: queries.raw_history(c, KITCHEN, 0, FAR, 1000))
    hall = db.read(lambda c: queries.raw_history(c, HALL, 0, FAR, 1000))
    assert (len(kitchen), len(hall)) == (5, 5)
    # The deleted ids stay in the kitchen's postings: its pages still hold only its own.
    for entity, ids in ((KITCHEN, [5, 4, 3, 2, 1]), (HALL, [10, 9, 8, 7, 6])):
        f = queries.EventFilter(entity_id=entity, limit=100)
        events, _ = db.read(lambda c, f=f: queries.list_events(c, f))
        assert [(e["entity_id"], e["id"]) for e in events] == [(entity, i) for i in ids]


def test_ids_handed_back_to_the_same_entity_are_read_once(db: _Store) -> None:
    db.ingest(KITCHEN, range(10))
    db.index_new_events()
    db.store.submit(lambda c: source.delete_events(c, [8, 9, 10])).result()
    db.ingest(KITCHEN, range(20, 25))  # ids 8..12, three of them in its postings already
    db.index_new_events()
    history = db.read(lambda c: queries.raw_history(c, KITCHEN, 0, FAR, 1000))
    assert len(history) == 12
    f = queries.EventFilter(entity_id=KITCHEN, limit=100)
    events, _ = db.read(lambda c: queries.list_events(c, f))
    assert [e["id"] for e in events] == list(range(12, 0, -1))


def test_hourly_stats_count_events_before_and_after_they_index(db: _Store) -> None:
    db.ingest(KITCHEN, range(0, 7200, 600))  # 12 events over two clock hours
    db.ingest(HALL, range(30, 60))
    db.index_new_events()
    db.ingest(KITCHEN, range(7200, 7500, 100))  # 3 more, unindexed
    now_us = int(BASE.timestamp() * 1_000_000) + 3 * 3_600_000_000
    unindexed = db.store.counts.unindexed

    def metrics() -> Any:
        stats = db.read(
            lambda c: compute_stats(
                c,
                period="24h",
                now_us=now_us,
                last_hour=LastHourCounts(),
                unindexed=unindexed,
                hour_sums=HourSums(),
                latencies=LatencyWindows(),
                db_size_bytes=0,
            )
        )
        m = msgspec.to_builtins(stats)["metrics"]
        return m["events"], m["by_domain"], m["by_event_type"], m["top_entities"]

    expected = (
        45,
        {"sensor": 45},
        {"state_changed": 45},
        [{"entity_id": HALL, "count": 30}, {"entity_id": KITCHEN, "count": 15}],
    )
    # The unindexed three from memory; then, memory lost, grouped from the raw tail.
    assert unindexed.since(db.read(deferred_index.position)) is not None
    assert metrics() == expected
    unindexed.forget()
    assert metrics() == expected
    db.index_new_events()
    indexed, top = db.watermark_and_top()
    assert indexed == top
    assert metrics() == expected


def test_hourly_counts_indexed_from_memory_match_the_raw_events(db: _Store) -> None:
    db.ingest(KITCHEN, range(0, 7200, 300))
    db.index_new_events()  # nothing known in memory yet: grouped from the raw events
    db.ingest(HALL, range(30, 4000, 7))
    db.ingest(KITCHEN, range(7200, 9000, 60))
    assert db.store.counts.unindexed.since(db.read(deferred_index.position)) is not None
    db.index_new_events()  # from the counts the ingest kept
    stored = db.read(lambda c: sorted(c.execute("SELECT * FROM stat_hour_key")))
    counted = db.read(
        lambda c: sorted(
            c.execute(
                # The domain of an entity's event is the entity's (store/ids.py).
                "SELECT time_fired / 3600000000, event_type_id, COALESCE(entity_ref, 0),"
                f" {EVENT_DOMAIN_REF}, COUNT(*) FROM events GROUP BY 1, 2, 3, 4"
            )
        )
    )
    assert stored == counted
    assert len(stored) > 4


def test_the_writer_indexes_new_events_by_itself(tmp_path: Path) -> None:
    db = _Store(tmp_path, auto=True)
    try:
        db.ingest(KITCHEN, range(10))
        deadline = time.monotonic() + 30
        while db.watermark_and_top() != (10, 10):
            assert time.monotonic() < deadline, "the idle writer never indexed the events"
            time.sleep(0.05)
    finally:
        db.store.close_sync()


def test_an_older_database_is_migrated_with_its_events_indexed(tmp_path: Path) -> None:
    # Schema version 2: events indexed by the old per-commit index.
    conn = sqlite3.connect(tmp_path / "homeiq.db", autocommit=True)
    conn.execute("BEGIN")
    m001_events(conn)
    migrate_retention(conn)
    conn.execute("PRAGMA user_version = 2")
    write_into(conn, [state_event(i, entity_id=KITCHEN) for i in range(7)])
    write_into(conn, [state_event(i, entity_id=HALL) for i in range(3)])
    conn.execute("COMMIT")
    conn.close()

    db = _Store(tmp_path)
    try:
        assert db.store.schema_version == len(MIGRATIONS)
        assert db.watermark_and_top() == (10, 10)
        history = db.read(lambda c: queries.raw_history(c, KITCHEN, 0, FAR, 1000))
        assert len(history) == 7
        old_index = db.read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'events_by_entity_time'"
            ).fetchone()[0]
        )
        assert old_index == 0
    finally:
        db.store.close_sync()
