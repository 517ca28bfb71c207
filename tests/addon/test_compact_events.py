"""Schema 6's compact events: numbers the row already holds are not stored twice, and
reads by time go through the block map; schema 8's durations in whole microseconds and
context ids beside their event's time. Every value reads back exactly as it was sent,
in the order it was asked for, also from a database written by an older version."""

from __future__ import annotations

from datetime import timedelta
import math
from pathlib import Path
import random
import sqlite3
from typing import Any

import orjson

from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.store.db import Store
from homeiq_addon.store.migrations import MIGRATIONS, migrate
from homeiq_addon.store.schema_check import check_database
from tests.addon.factory import BASE, batch, service_event, state_event, write_into
from tests.addon.test_ingest import get, post
from tests.conftest import AddonProcess

# (state, numeric_value, prev_state_seconds): every way each number can be stored.
_NUMBERS: list[tuple[str | None, float | int | None, float | int | None]] = [
    ("21.3", 21.3, 0.5),  # the state's number: not stored again; whole microseconds
    ("21.30", 21.3, 300.123456),  # another spelling of it
    ("21", 21, 7),  # integers in the JSON
    ("21.5", 21.5, -0.000001),  # a clock set back: a negative duration
    ("21.5", 21.5, 1767225600.123456 - 1767225000.654321),  # the float noise of a difference
    ("0.1", 0.1 + 0.2, 0.1 + 0.2),  # a number that is not the state's; no whole µs
    ("0", -0.0, 0.0),  # zero keeps its sign
    ("-0", 0.0, -2.5),
    ("on", 1.0, 1e-7),  # a word state
    ("1e3", 1000.0, 1234567.891),
    ("7.25", 7.25, 1e300),
    ("7.25", None, None),
    (None, 3.5, 86400.0),
    ("12.000000000000001", 12.000000000000002, 2.0**-22 * 12345),
]


def _events() -> list[dict[str, Any]]:
    return [
        state_event(i, state=state, numeric_value=number, prev_state_seconds=seconds)
        for i, (state, number, seconds) in enumerate(_NUMBERS)
    ]


def _same(got: Any, sent: Any) -> bool:
    """Equal, and for floats the same float, sign of zero included."""
    if isinstance(sent, float) or isinstance(got, float):
        return (
            got is not None
            and sent is not None
            and float(got) == float(sent)
            and math.copysign(1, got) == math.copysign(1, sent)
        )
    return bool(got == sent)


def _view_rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM events_enriched ORDER BY id").fetchall()
    finally:
        conn.close()


async def test_every_number_reads_back_as_sent(addon_server: AddonProcess) -> None:
    sent = _events()
    assert (await post(addon_server, batch(sent)))[0] == 200
    status, page = await get(addon_server, "/api/v1/events?limit=100")
    assert status == 200
    by_context = {e["context_id"]: e for e in page["events"]}
    for event in sent:
        got = by_context[event["context_id"]]
        for key in ("state", "numeric_value", "prev_state_seconds"):
            assert _same(got.get(key), event[key]), (key, got.get(key), event[key])
    # The view that ad-hoc SQL and the mirror read gives the same numbers.
    rows = _view_rows(addon_server.data_dir / "homeiq.db")
    for row, event in zip(rows, sent, strict=True):
        assert _same(row[7], event["numeric_value"]), (row[7], event)
        assert _same(row[9], event["prev_state_seconds"]), (row[9], event)
    # Raw history too (the events of entity _0 are those with i % 7 == 0).
    start, end = BASE.isoformat(), (BASE + timedelta(hours=1)).isoformat()
    status, history = await get(
        addon_server,
        f"/api/v1/history/sensor.living_room_temperature_0?start={start}&end={end}".replace(
            "+", "%2B"
        ),
    )
    assert status == 200, history
    expected = [e["numeric_value"] for i, e in enumerate(sent) if i % 7 == 0]
    got = [p["numeric_value"] for p in history["points"]]
    assert len(got) == len(expected)
    assert all(_same(g, e) for g, e in zip(got, expected, strict=True)), (got, expected)


async def test_late_events_are_read_in_time_order(addon_server: AddonProcess) -> None:
    # Batches whose events are older than those already stored, some by days: their ids
    # come after, their times before.
    order = [*range(100, 2200), *range(100), *range(3000, 3100), *range(2200, 3000)]

    def at(i: int) -> dict[str, Any]:
        return state_event(i, at=BASE - timedelta(days=i % 3))

    for first in range(0, len(order), 500):
        assert (await post(addon_server, batch([at(i) for i in order[first : first + 500]])))[
            0
        ] == 200
    seen: list[dict[str, Any]] = []
    path = "/api/v1/events?limit=333"
    while True:
        status, page = await get(addon_server, path)
        assert status == 200, page
        seen += page["events"]
        if page["next_cursor"] is None:
            break
        path = f"/api/v1/events?limit=333&cursor={page['next_cursor']}"
    assert sorted(e["context_id"] for e in seen) == sorted(at(i)["context_id"] for i in order)
    keys = [(e["time_fired"], e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)
    # A time range among the late ones: exactly the events in it.
    start, end = BASE - timedelta(days=1, minutes=-10), BASE - timedelta(days=1, minutes=-20)
    query = f"start={start.isoformat()}&end={end.isoformat()}".replace("+", "%2B")
    status, page = await get(addon_server, f"/api/v1/events?limit=1000&{query}")
    assert status == 200, page
    inside = sorted(
        at(i)["context_id"]
        for i in order
        if start <= BASE - timedelta(days=i % 3) + timedelta(seconds=i, microseconds=i) < end
    )
    assert sorted(e["context_id"] for e in page["events"]) == inside
    assert inside


def test_a_schema_5_database_is_rewritten_and_reads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "homeiq.db"
    conn = sqlite3.connect(path, autocommit=True)
    migrate(conn, upto=5)
    conn.execute("BEGIN")
    write_into(conn, _events())
    write_into(conn, [state_event(100 + i) for i in range(500)])
    conn.execute("COMMIT")
    before = _view_rows(path)
    counted = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    conn.close()

    store = Store.open_sync(tmp_path)
    try:
        assert store.schema_version == len(MIGRATIONS)
    finally:
        store.close_sync()

    after = _view_rows(path)
    assert len(after) == len(before) == counted
    for old, new in zip(before, after, strict=True):
        assert len(old) == len(new)
        assert all(_same(n, o) for o, n in zip(old, new, strict=True)), (old, new)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0] == (
            counted
        )
        # The sensors' numbers are their states: stored as the integer 0, no byte.
        derived = conn.execute(
            "SELECT COUNT(*) FROM events WHERE typeof(numeric_value) = 'integer'"
        ).fetchone()[0]
        assert derived >= 500
    finally:
        conn.close()
    assert check_database(path) == len(MIGRATIONS)


def test_a_realistic_event_takes_under_75_bytes_on_disk(tmp_path: Path) -> None:
    # 20,000 sensor and switch events of 300 entities through the store's own ingest.
    # The file measured 1.36 MB (68.2 B per event) with schema 10, 1.86 MB (92.8 B) with
    # schema 6, and 2.43 MB (121.4 B) with schema 5's layout of the same events (more per
    # event than at a million: the lookup tables and the pages SQLite starts with weigh
    # more here). The bound leaves room for SQLite's page splits, which depend on when the
    # writer indexed, and fails if the entity index, the index on time or the doubled
    # numbers come back (the context ids' lengths are checked on their own, above).
    rng = random.Random(15)
    store = Store.open_sync(tmp_path)
    ingestor = Ingestor(store)
    try:
        futures = []
        for first in range(0, 20_000, 500):
            events = []
            for i in range(first, first + 500):
                n = rng.randrange(300)
                if n < 200:
                    value = round(rng.gauss(21, 3), 1)
                    seconds = round(rng.expovariate(1 / 300), 3)
                    ev = state_event(i, entity_id=f"sensor.t_{n}", state=str(value),
                                     old_state=str(value - 0.5), numeric_value=value,
                                     prev_state_seconds=seconds)  # fmt: skip
                else:
                    on = rng.random() < 0.5
                    ev = state_event(i, entity_id=f"switch.s_{n}", domain="switch",
                                     state="on" if on else "off", old_state="off" if on else "on",
                                     numeric_value=None, attributes=None)  # fmt: skip
                events.append(ev)
            body = orjson.dumps(batch(events))
            futures.append(store.submit(lambda c, b=body: ingestor.ingest(c, b)))
        assert sum(f.result().accepted for f in futures) == 20_000
    finally:
        store.close_sync()
    conn = sqlite3.connect(tmp_path / "homeiq.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    per_event = (tmp_path / "homeiq.db").stat().st_size / 20_000
    assert per_event < 75, per_event


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(ms: int, random_bits: int) -> str:
    number = (ms << 80) | random_bits
    return "".join(_CROCKFORD[(number >> (5 * k)) & 31] for k in reversed(range(26)))


async def test_context_ids_read_back_exactly_and_an_events_own_is_stored_in_11_bytes(
    addon_server: AddonProcess,
) -> None:
    rng = random.Random(8)
    fired_ms = (int(BASE.timestamp() * 1000) // 1000) * 1000 + 123  # state_event(0)'s ms
    # (offset of the context's ms from its event's, bytes it is stored in)
    offsets = [(0, 11), (-5, 11), (63, 11), (-64, 11), (-900, 12), (-600_000, 13),
               (-2 * 86_400_000, 16), (1, 11)]  # fmt: skip
    sent = []
    for i, (offset, _) in enumerate(offsets):
        event = state_event(0, context_id=_ulid(fired_ms + offset, rng.getrandbits(80)))
        event["time_fired"] = event["last_changed"] = (BASE + timedelta(microseconds=i)).isoformat()
        sent.append(event)
    # A parent and the other spellings of an id keep their own forms.
    sent.append(state_event(1, context_parent_id=_ulid(fired_ms, rng.getrandbits(80))))
    sent.append(state_event(2, context_id="0123456789abcdef0123456789abcdef"))
    sent.append(state_event(3, context_id="not-a-ulid-at-all"))
    assert (await post(addon_server, batch(sent)))[0] == 200

    status, page = await get(addon_server, "/api/v1/events?limit=100")
    assert status == 200
    got = sorted(page["events"], key=lambda e: e["id"])
    assert [(e["context_id"], e.get("context_parent_id")) for e in got] == [
        (e["context_id"], e.get("context_parent_id")) for e in sent
    ]
    conn = sqlite3.connect(f"file:{addon_server.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        lengths = [n for (n,) in conn.execute("SELECT length(context_id) FROM events ORDER BY id")]
    finally:
        conn.close()
    assert lengths[: len(offsets)] == [size for _, size in offsets]


async def test_a_domain_is_stored_only_where_the_entity_id_does_not_say_it(
    addon_server: AddonProcess,
) -> None:
    sent = [
        state_event(0),  # sensor.…: its entity's domain, not stored again
        state_event(1, entity_id="sensor.odd_one", domain="custom"),  # another domain
        state_event(2, entity_id="light.hall", domain=None),  # none sent: the entity's
    ]
    sent += [service_event(3)]  # no entity: its own domain (light, from its data)
    sent[-1]["domain"] = "light"
    assert (await post(addon_server, batch(sent)))[0] == 200

    async def ids_of(query: str) -> list[str]:
        status, page = await get(addon_server, f"/api/v1/events{query}")
        assert status == 200, page
        return sorted(e["context_id"] for e in page["events"])

    contexts = [e["context_id"] for e in sent]
    assert await ids_of("?domain=sensor") == [contexts[0]]
    assert await ids_of("?domain=custom") == [contexts[1]]
    assert await ids_of("?domain=light") == sorted([contexts[2], contexts[3]])
    _, page = await get(addon_server, "/api/v1/events?limit=10")
    domains = {e["context_id"]: e.get("domain") for e in page["events"]}
    assert [domains[c] for c in contexts] == ["sensor", "custom", "light", "light"]
    conn = sqlite3.connect(f"file:{addon_server.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        stored = [n for (n,) in conn.execute("SELECT domain_ref FROM events ORDER BY id")]
        view = [d for (d,) in conn.execute("SELECT domain FROM events_enriched ORDER BY id")]
    finally:
        conn.close()
    assert stored[0] is None and stored[2] is None
    assert stored[1] is not None and stored[3] is not None
    assert view == ["sensor", "custom", "light", "light"]


async def test_type_origin_and_user_read_back_from_one_stored_integer(
    addon_server: AddonProcess,
) -> None:
    user = "9f2b1c0d8e7a6b5c4d3e2f1a0b9c8d7e"
    sent = [
        state_event(0),  # the common case: stored as 0
        state_event(1, origin="REMOTE", context_user_id=user),
        service_event(2),  # another type, with a user
        service_event(3, event_type="my_custom_event", origin="REMOTE", context_user_id=None),
    ]
    sent[-1]["cause"] = "system"
    assert (await post(addon_server, batch(sent)))[0] == 200
    status, page = await get(addon_server, "/api/v1/events?limit=10")
    assert status == 200
    by_context = {e["context_id"]: e for e in page["events"]}
    for event in sent:
        got = by_context[event["context_id"]]
        for key in ("event_type", "origin", "context_user_id"):
            assert got.get(key) == event.get(key), (key, got, event)
    status, page = await get(addon_server, "/api/v1/events?event_type=my_custom_event")
    assert [e["context_id"] for e in page["events"]] == [sent[3]["context_id"]]
    conn = sqlite3.connect(f"file:{addon_server.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        kinds = [k for (k,) in conn.execute("SELECT event_kind FROM events ORDER BY id")]
    finally:
        conn.close()
    assert kinds[0] == 0 and all(k > 0 for k in kinds[1:])
