"""Reads by entity through its postings (store/entity_postings.py, schema 10) are exact:
every event of the entity once, in time order, whether it arrived late, was indexed or
not yet, had neighbours deleted by retention, or is one of a few in a long history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
import sqlite3
from typing import Any

import orjson
import pytest

from homeiq_addon.history import queries
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.retention import source
from homeiq_addon.store.db import Store
from homeiq_addon.store.migrations import MIGRATIONS, migrate
from homeiq_addon.store.schema_check import check_database
from homeiq_addon.times import us_to_iso
from tests.addon.factory import BASE, batch, state_event, write_into
from tests.addon.test_compact_events import _view_rows
from tests.addon.test_ingest import get, post
from tests.conftest import AddonProcess

KITCHEN = "sensor.kitchen"
HALL = "sensor.hall"
RARE = "binary_sensor.attic_window"
FAR = 2**62
_US = 1_000_000


def _at(i: int, late_by: timedelta = timedelta(0)) -> int:
    """The time of event ``i`` as the factory makes it, in µs."""
    t = BASE - late_by + timedelta(seconds=i, microseconds=i)
    return int(t.timestamp()) * _US + t.microsecond


class _Store:
    """A real store on a file; it indexes only when the test says so."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open_sync(path)
        self.store.indexing = False
        self.ingestor = Ingestor(self.store)
        self.sent: dict[str, list[tuple[int, str]]] = {}  # entity: (time µs, context id)

    def ingest(self, events: list[dict[str, Any]]) -> None:
        for first in range(0, len(events), 5000):
            body = orjson.dumps(batch(events[first : first + 5000]))
            self.store.submit(lambda c, b=body: self.ingestor.ingest(c, b)).result()

    def index(self) -> None:
        self.store.index_now().result()

    def read(self, fn: Any) -> Any:
        return self.store.read_sync(fn)

    def delete(self, ids: list[int]) -> None:
        """As a retention run: the events go, then what the store keeps of them."""
        self.store.submit(lambda c: source.delete_events(c, ids)).result()
        # In steps of one entity each (no time budget left after one), as retention's job
        # goes, which ends with the same postings as one call for all.
        after: int | None = -1
        while after is not None:
            after = self.store.submit(
                lambda c, a=after: source.forget_purged(c, a, budget_s=0.0)
            ).result()

    def newest_first(self, entity_id: str, limit: int, **window: int) -> list[dict[str, Any]]:
        """Every page of the entity's events, newest first, following the cursor."""
        seen: list[dict[str, Any]] = []
        after: tuple[int, int] | None = None
        while True:
            f = queries.EventFilter(entity_id=entity_id, limit=limit, after=after, **window)
            page, after = self.read(lambda c, f=f: queries.list_events(c, f))
            assert len(page) <= limit
            seen += page
            if after is None:
                return seen

    def history(self, entity_id: str, start_us: int, end_us: int, limit: int = 10_000) -> Any:
        return self.read(lambda c: queries.raw_history(c, entity_id, start_us, end_us, limit))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[_Store]:
    s = _Store(tmp_path)
    yield s
    s.store.close_sync()


def _iso_us(event: dict[str, Any]) -> int:
    t = datetime.fromisoformat(event["time_fired"])
    return int(t.timestamp()) * _US + t.microsecond


def _event(i: int, entity_id: str, late_by: timedelta = timedelta(0)) -> dict[str, Any]:
    return state_event(i, entity_id=entity_id, at=BASE - late_by, state=f"s{i}")


def _keys(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["time_fired"], e["id"]) for e in events]


def _states(events: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in events]


def _expected(events: list[dict[str, Any]], newest_first: bool = True) -> list[str]:
    """The states of ``events`` in the order a read must give them (by time; by id,
    that is arrival, among equal times)."""
    order = sorted(enumerate(events), key=lambda p: (_iso_us(p[1]), p[0]))
    states = [e["state"] for _, e in order]
    return states[::-1] if newest_first else states


def test_late_events_are_read_in_time_order_by_entity(db: _Store) -> None:
    # The kitchen's events come in three batches, the later two older than the first
    # (one by days): their ids come after, their times before. Others in between.
    kitchen = [_event(i, KITCHEN) for i in range(3000, 4200, 3)]
    kitchen_late = [_event(i, KITCHEN, timedelta(days=2)) for i in range(0, 900, 2)]
    kitchen_later = [_event(i, KITCHEN, timedelta(minutes=20)) for i in range(1, 5000, 5)]
    db.ingest([*kitchen, *[_event(i, HALL) for i in range(2000)]])
    db.index()
    db.ingest(kitchen_late)
    db.index()
    db.ingest([*[_event(i, HALL) for i in range(2000, 2700)], *kitchen_later])  # not indexed
    sent = [*kitchen, *kitchen_late, *kitchen_later]

    seen = db.newest_first(KITCHEN, 37)
    assert _states(seen) == _expected(sent)
    assert _keys(seen) == sorted(_keys(seen), reverse=True)
    history = db.history(KITCHEN, 0, FAR)
    assert [p["state"] for p in history] == _expected(sent, newest_first=False)
    # Limited reads stop early and still give the first events in time.
    assert [p["state"] for p in db.history(KITCHEN, 0, FAR, 25)] == _expected(sent, False)[:25]
    # A window among the late ones: exactly the events in it.
    start, end = _at(100, timedelta(minutes=20)), _at(2700, timedelta(minutes=20))
    inside = [e for e in sent if start <= _iso_us(e) < end]
    assert _states(db.newest_first(KITCHEN, 10, start_us=start, end_us=end)) == _expected(inside)
    # The last state before a time, and the oldest event.
    for before in (_at(3001), _at(50, timedelta(minutes=20)), _at(451, timedelta(days=2))):
        earlier = [e for e in sent if _iso_us(e) < before]
        found = db.read(lambda c, b=before: source.previous_state(c, KITCHEN, b))
        assert found == (True, _expected(earlier)[0])
    assert db.read(lambda c: source.previous_state(c, KITCHEN, _at(0, timedelta(days=2)))) == (
        False,
        None,
    )
    assert db.read(lambda c: source.oldest_raw(c, KITCHEN)) == _at(0, timedelta(days=2))


def test_reads_stay_exact_after_retention_deleted_events(db: _Store) -> None:
    events = [_event(i, KITCHEN if i % 3 else HALL) for i in range(6000)]
    db.ingest(events)
    db.index()
    by_id = dict(enumerate(events, start=1))
    # The oldest thousand go, and every seventh event after them.
    deleted = [*range(1, 1001), *range(1001, 6001, 7)]
    db.delete(deleted)
    # Every entity's postings forgot the ids below the oldest event left.
    below = "SELECT COUNT(DISTINCT entity_ref) FROM entity_postings WHERE first_id < 1001"
    assert db.read(lambda c: c.execute(below).fetchone()[0]) == 0
    db.ingest([_event(i, KITCHEN) for i in range(6000, 6100)])  # new ids, then indexed
    db.index()
    for i in range(6000, 6100):
        by_id[6001 + i - 6000] = _event(i, KITCHEN)
    for gone in deleted:
        del by_id[gone]
    kitchen = [e for e in by_id.values() if e["entity_id"] == KITCHEN]
    assert _states(db.newest_first(KITCHEN, 500)) == _expected(kitchen)
    assert [p["state"] for p in db.history(KITCHEN, 0, FAR)] == _expected(kitchen, False)
    hall = [e for e in by_id.values() if e["entity_id"] == HALL]
    assert db.read(lambda c: source.oldest_raw(c, HALL)) == _iso_us(hall[0])
    # Every event of the hall deleted: nothing found, none left to find.
    db.delete([i for i, e in by_id.items() if e["entity_id"] == HALL])
    assert db.newest_first(HALL, 10) == []
    assert db.read(lambda c: source.previous_state(c, HALL, FAR)) == (False, None)
    assert db.read(lambda c: source.oldest_raw(c, HALL)) is None


def test_pages_cross_from_the_unindexed_tail_into_the_indexed_events(db: _Store) -> None:
    indexed = [_event(i, KITCHEN) for i in range(0, 3000, 2)]
    db.ingest([*indexed, *[_event(i, HALL) for i in range(1, 3000, 2)]])
    db.index()
    # The tail holds newer events and one older than every indexed one.
    tail = [_event(i, KITCHEN) for i in range(3000, 3050)] + [
        _event(5, KITCHEN, timedelta(minutes=5))
    ]
    db.ingest(tail)
    sent = [*indexed, *tail]
    assert _states(db.newest_first(KITCHEN, 40)) == _expected(sent)
    assert [p["state"] for p in db.history(KITCHEN, 0, FAR)] == _expected(sent, False)
    assert db.read(lambda c: source.oldest_raw(c, KITCHEN)) == _iso_us(tail[-1])
    last_indexed = _at(2998)
    assert db.read(lambda c: source.previous_state(c, KITCHEN, last_indexed + 1)) == (
        True,
        "s2998",
    )
    db.index()  # the same answers once the tail is indexed
    assert _states(db.newest_first(KITCHEN, 40)) == _expected(sent)


def test_a_rare_entity_in_a_long_history(db: _Store) -> None:
    # 70,000 events over two segments of ids (65,536 each): a chatty kitchen, and a rare
    # window sensor with a handful of events at the start, in the middle, at the end, and
    # one late.
    rare: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for i in range(70_000):
        if i in (3, 40, 30_000, 68_001):
            rare.append(_event(i, RARE))
            events.append(rare[-1])
        else:
            events.append(_event(i, KITCHEN))
    db.ingest(events[:50_000])
    db.index()
    db.ingest(events[50_000:])
    db.index()
    late = _event(10, RARE, timedelta(days=1))
    db.ingest([late])  # the newest id, the oldest time
    rare.append(late)

    assert _states(db.newest_first(RARE, 2)) == _expected(rare)
    assert [p["state"] for p in db.history(RARE, 0, FAR)] == _expected(rare, False)
    for before, state in (
        (FAR, "s68001"),
        (_at(68_001), "s30000"),
        (_at(30_000), "s40"),
        (_at(4), "s3"),
        (_at(3), "s10"),  # the late one, older than all the others
    ):
        assert db.read(lambda c, b=before: source.previous_state(c, RARE, b)) == (True, state)
    assert db.read(lambda c: source.previous_state(c, RARE, _iso_us(late))) == (False, None)
    # The chatty kitchen's last page and a window across a segment's edge (id 65536).
    page = db.newest_first(KITCHEN, 100, start_us=_at(69_900))
    assert _states(page) == [f"s{i}" for i in range(69_999, 69_899, -1)]
    window = db.history(KITCHEN, _at(65_000), _at(66_000))
    assert [p["state"] for p in window] == [f"s{i}" for i in range(65_000, 66_000)]

    # Retention takes the first 66,000 events: the kitchen's and the window's early ones,
    # and their ids in the postings.
    db.delete(list(range(1, 66_001)))
    db.index()
    left = [e for e in rare if _iso_us(e) >= _at(66_000) or e is late]
    assert _states(db.newest_first(RARE, 2)) == _expected(left)
    assert db.read(lambda c: source.oldest_raw(c, RARE)) == _iso_us(late)
    assert db.read(lambda c: source.oldest_raw(c, KITCHEN)) == _at(66_000)
    assert len(db.history(KITCHEN, 0, FAR)) == 3999
    assert [p["time"] for p in db.history(KITCHEN, 0, _at(66_010))] == [
        us_to_iso(_at(i)) for i in range(66_000, 66_010)
    ]


async def test_late_events_of_one_entity_over_http(addon_server: AddonProcess) -> None:
    order = [*range(100, 1200), *range(100), *range(1200, 1300)]

    def at(i: int) -> dict[str, Any]:
        return state_event(i, at=BASE - timedelta(days=i % 3), entity_id=f"sensor.t_{i % 2}")

    for first in range(0, len(order), 300):
        status, _ = await post(addon_server, batch([at(i) for i in order[first : first + 300]]))
        assert status == 200
    seen: list[dict[str, Any]] = []
    path = "/api/v1/events?entity_id=sensor.t_1&limit=77"
    while True:
        status, page = await get(addon_server, path)
        assert status == 200, page
        seen += page["events"]
        if page["next_cursor"] is None:
            break
        path = f"/api/v1/events?entity_id=sensor.t_1&limit=77&cursor={page['next_cursor']}"
    assert sorted(e["context_id"] for e in seen) == sorted(
        at(i)["context_id"] for i in order if i % 2
    )
    assert _keys(seen) == sorted(_keys(seen), reverse=True)


def _index_as_schema_7(conn: sqlite3.Connection) -> None:
    """What schema 7's writer did when it indexed: (entity, time, id) of every new
    event into events_by_entity, times into the block map, counts by hour."""
    low = conn.execute("SELECT value FROM counters WHERE name = 'settled'").fetchone()[0]
    top = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
    conn.execute(
        "INSERT INTO events_by_entity SELECT entity_ref, time_fired, id FROM events"
        " WHERE id > ? AND entity_ref IS NOT NULL",
        (low,),
    )
    conn.execute(
        "INSERT INTO event_blocks SELECT id >> 10, MIN(time_fired), MAX(time_fired)"
        " FROM events WHERE id > ? GROUP BY 1 ON CONFLICT (block) DO UPDATE"
        " SET first_us = MIN(first_us, excluded.first_us),"
        " last_us = MAX(last_us, excluded.last_us)",
        (low,),
    )
    conn.execute(
        "INSERT INTO stat_hour_key SELECT time_fired / 3600000000, event_type_id,"
        " COALESCE(entity_ref, 0), COALESCE(domain_ref, 0), COUNT(*) FROM events"
        " WHERE id > ? GROUP BY 1, 2, 3, 4 ON CONFLICT DO UPDATE SET n = n + excluded.n",
        (low,),
    )
    conn.execute("UPDATE counters SET value = ? WHERE name = 'settled'", (top,))


def test_a_schema_7_store_keeps_every_event_readable_by_entity(tmp_path: Path) -> None:
    path = tmp_path / "homeiq.db"
    conn = sqlite3.connect(path, autocommit=True)
    assert migrate(conn, upto=7) == 7
    conn.execute("BEGIN")
    entities = [KITCHEN, HALL, RARE]
    sent: list[dict[str, Any]] = []
    for first in range(0, 3000, 500):
        chunk = [_event(i, entities[0 if i % 5 else 1]) for i in range(first, first + 500)]
        write_into(conn, chunk)
        sent += chunk
    write_into(conn, [_event(7, RARE)])
    _index_as_schema_7(conn)
    conn.execute("DELETE FROM events WHERE id BETWEEN 100 AND 199")  # retention was here
    late = [_event(i, KITCHEN, timedelta(hours=2)) for i in range(20)]
    write_into(conn, late)  # not indexed yet
    conn.execute("COMMIT")
    conn.close()
    sent = [e for n, e in enumerate(sent, start=1) if not 100 <= n <= 199]
    sent += [_event(7, RARE), *late]
    before = _view_rows(path)

    db = _Store(tmp_path)
    try:
        assert db.store.schema_version == len(MIGRATIONS) >= 8
        for entity_id in entities:
            mine = [e for e in sent if e["entity_id"] == entity_id]
            assert _states(db.newest_first(entity_id, 333)) == _expected(mine)
            history = db.history(entity_id, 0, FAR)
            assert [p["state"] for p in history] == _expected(mine, False)
        db.index()
        for entity_id in entities:
            mine = [e for e in sent if e["entity_id"] == entity_id]
            assert _states(db.newest_first(entity_id, 333)) == _expected(mine)
        tables = db.read(lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_schema")})
        assert "events_by_entity" not in tables
    finally:
        db.store.close_sync()
    assert _view_rows(path) == before
    assert check_database(path) == len(MIGRATIONS)
