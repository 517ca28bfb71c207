"""POST /api/v1/ingest against the real add-on process and its SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import aiohttp
import orjson
import pytest

from tests.addon.factory import batch, service_event, state_event, with_columns, with_entities
from tests.conftest import AddonProcess


async def post(
    server: AddonProcess,
    body: Any,
    headers: dict[str, str] | None = None,
    url: str | None = None,
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url or server.url}/api/v1/ingest",
            data=data,
            headers=server.headers if headers is None else headers,
        ) as resp,
    ):
        return resp.status, await resp.json()


async def get(server: AddonProcess, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}{path}", headers=server.headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_batch_is_committed_and_acknowledged(addon_server: AddonProcess) -> None:
    body = batch([state_event(i) for i in range(10)] + [service_event(1)])
    status, answer = await post(addon_server, body)
    assert status == 200
    assert answer == {"batch_id": body["batch_id"], "accepted": 11, "duplicate": False}
    # Acknowledged means committed: another process sees the rows at once.
    assert addon_server.row_count() == 11


async def test_repeated_batch_id_gets_same_answer_and_writes_nothing(
    addon_server: AddonProcess,
) -> None:
    body = batch([state_event(i) for i in range(4)])
    first = await post(addon_server, body)
    again = await post(addon_server, body)
    assert first[1]["accepted"] == again[1]["accepted"] == 4
    assert again == (200, {**first[1], "duplicate": True})
    # Even with different content, the id decides: the first answer, nothing written.
    changed = {**body, "events": [state_event(i) for i in range(9)]}
    assert await post(addon_server, changed) == again
    assert addon_server.row_count() == 4


def _bad(**changes: Any) -> dict[str, Any]:
    body = batch([state_event(0), state_event(1)])
    event = body["events"][1]
    for key, value in changes.items():
        if value is _DROP:
            event.pop(key)
        else:
            event[key] = value
    return body


_DROP = object()
BAD_INPUTS = [
    # (id, body, status, error code, text the message must contain)
    ("malformed_json", b'{"batch_id": "x", "events": [', 400, "invalid_json", "malformed JSON"),
    ("not_an_object", b"[1, 2]", 422, "invalid_batch", "body: expected a JSON object"),
    ("empty_events", {**batch(), "events": []}, 422, "invalid_batch", "events"),
    (
        "missing_source",
        {"batch_id": "a", "events": [state_event()]},
        422,
        "invalid_batch",
        "source",
    ),
    ("bad_batch_id", {**batch(), "batch_id": "no spaces"}, 422, "invalid_batch", "batch_id"),
    ("time_not_iso", _bad(time_fired="yesterday"), 422, "invalid_batch", "events[1].time_fired"),
    (
        "time_without_offset",
        _bad(time_fired="2026-11-22T10:00:00.123456"),
        422,
        "invalid_batch",
        "events[1].time_fired: expected ISO 8601 datetime with UTC offset",
    ),
    (
        "wrong_type_number",
        _bad(numeric_value="20.5"),
        422,
        "invalid_batch",
        "events[1].numeric_value",
    ),
    (
        "bool_is_no_number",
        _bad(sun_elevation=True),
        422,
        "invalid_batch",
        "events[1].sun_elevation",
    ),
    ("wrong_type_labels", _bad(labels="kitchen"), 422, "invalid_batch", "events[1].labels"),
    ("bad_origin", _bad(origin="MARS"), 422, "invalid_batch", "events[1].origin"),
    ("bad_cause", _bad(cause="ghost"), 422, "invalid_batch", "events[1].cause"),
    ("missing_event_type", _bad(event_type=_DROP), 422, "invalid_batch", "events[1].event_type"),
    ("missing_context", _bad(context_id=_DROP), 422, "invalid_batch", "events[1].context_id"),
    ("unknown_field", _bad(colour="red"), 422, "invalid_batch", "events[1].colour: extra keys"),
    ("state_without_entity", _bad(entity_id=None), 422, "invalid_batch", "events[1].entity_id"),
    ("bad_entity_id", _bad(entity_id="Kitchen Light"), 422, "invalid_batch", "events[1].entity_id"),
    ("negative_people", _bad(people_home=-1), 422, "invalid_batch", "events[1].people_home"),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
async def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(
    addon_server: AddonProcess, body: Any, status: int, code: str, text: str
) -> None:
    await post(addon_server, batch([state_event(50)]))
    answer = await post(addon_server, body)
    assert answer[0] == status
    assert answer[1]["error"] == code
    assert text in answer[1]["message"]
    assert addon_server.row_count() == 1


async def test_oversized_body_gets_413_and_writes_nothing(
    tmp_path: Any, socket_enabled: None
) -> None:
    server = AddonProcess(tmp_path / "data", extra_args=[])
    server.data_dir.mkdir()
    # The smallest limit the options allow, so the test body stays small.
    (server.data_dir / "options.json").write_text('{"max_body_mb": 1}')
    server.extra_args = ["--options", str(server.data_dir / "options.json"), "--host", "127.0.0.1"]
    server.start()
    try:
        big = batch([state_event(i, attributes={"blob": "x" * 4000}) for i in range(300)])
        status, answer = await post(server, big)
        assert (status, answer["error"]) == (413, "body_too_large")
        assert "max_body_mb" in answer["message"]
        assert server.row_count() == 0
        # Still serving: a normal batch goes through afterwards.
        assert (await post(server, batch()))[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "missing_token", id="missing"),
        pytest.param({"Authorization": "Bearer wrong"}, "invalid_token", id="wrong"),
        pytest.param({"Authorization": "Basic abc"}, "invalid_token", id="not_bearer"),
    ],
)
async def test_token_is_required(
    addon_server: AddonProcess, headers: dict[str, str], code: str
) -> None:
    status, answer = await post(addon_server, batch(), headers=headers)
    assert (status, answer["error"]) == (401, code)
    assert addon_server.row_count() == 0
    async with aiohttp.ClientSession() as session:
        for path in ("/api/v1/health", "/api/v1/events", "/api/v1/stats", "/api/openapi.json"):
            async with session.get(f"{addon_server.url}{path}", headers=headers) as resp:
                assert resp.status == 401, path
        # Only the minimal health (Docker HEALTHCHECK) answers without the token.
        async with session.get(f"{addon_server.url}/api/v1/health?minimal=1") as resp:
            assert await resp.json() == {"status": "healthy"}


async def test_concurrent_batches_all_land_once(addon_server: AddonProcess) -> None:
    bodies = [batch([state_event(100 * b + i) for i in range(50)]) for b in range(20)]
    twice = bodies[:5]  # sent twice at the same time: one wins, the other is a duplicate
    answers = await asyncio.gather(*(post(addon_server, b) for b in bodies + twice))
    assert all(status == 200 for status, _ in answers)
    assert sum(not a["duplicate"] for _, a in answers) == 20
    assert sum(a["duplicate"] for _, a in answers) == 5
    assert addon_server.row_count() == 1000


async def test_many_big_batches_at_once_all_land_once(addon_server: AddonProcess) -> None:
    # Bodies past the decode worker's threshold, more at once than the add-on holds in
    # memory: the others wait their turn, none is refused or written twice.
    wide = {"unit_of_measurement": "°C", "note": "x" * 200}
    bodies = [
        batch([state_event(1000 * b + i, attributes=wide) for i in range(300)]) for b in range(12)
    ]
    assert all(len(orjson.dumps(b)) > 64 * 1024 for b in bodies)
    answers = await asyncio.gather(*(post(addon_server, b) for b in bodies + bodies[:4]))
    assert all(status == 200 for status, _ in answers)
    assert sum(a["accepted"] for _, a in answers if not a["duplicate"]) == 3600
    assert sum(a["duplicate"] for _, a in answers) == 4
    assert addon_server.row_count() == 3600


@pytest.mark.parametrize("events", [40, 600], ids=["on the writer", "in the decode worker"])
@pytest.mark.parametrize("form", ["entities", "columns"])
async def test_shorter_forms_read_back_as_the_events_carried_them(
    addon_server: AddonProcess, events: int, form: str
) -> None:
    """The health answer says the add-on reads ``entities`` and ``columns``; events that
    refer to their entities, as events or as blocks of columns, are stored and read back
    exactly as the same events carrying every field."""
    _, health = await get(addon_server, "/api/v1/health")
    assert {"batch_entities", "batch_columns"} <= set(health["features"])
    user = {"context_user_id": "9f2b1c0d", "cause": "user", "cause_name": "Alice"}
    plain = [state_event(i, **(user if i % 9 == 0 else {})) for i in range(events)]
    later = [  # the same events a day later (the store keeps one event per time and entity)
        {**e, "time_fired": e["time_fired"].replace("2026-11-22", "2026-11-23")} for e in plain
    ]
    shorter = with_entities(batch(later))
    if form == "columns":
        shorter = with_columns(shorter)
    # 64 KiB: the decode worker's threshold.
    assert len(orjson.dumps(shorter)) > 64 * 1024 or events < 100
    assert (await post(addon_server, batch(plain)))[0] == 200
    assert (await post(addon_server, shorter))[0] == 200

    async def page(day: str) -> list[dict[str, Any]]:
        _, answer = await get(
            addon_server,
            f"/api/v1/events?start={day}T00:00:00%2B00:00&end={day}T23:59:59%2B00:00"
            f"&limit={events}",
        )
        return [
            {k: v for k, v in e.items() if k not in ("id", "time_fired")} for e in answer["events"]
        ]

    first, second = await page("2026-11-22"), await page("2026-11-23")
    assert len(first) == events
    assert second == first


async def test_values_that_never_repeat_are_stored_exactly_once_each(
    addon_server: AddonProcess,
) -> None:
    # More distinct attribute sets and snapshots than the writer keeps in memory (its
    # caches start over past a few thousand): each is still stored once, and every event
    # reads back with its own.
    sent = [
        state_event(i, attributes={"reading": i % 5000}, outdoor_temperature=i / 8)
        for i in range(6000)
    ]
    for start in range(0, 6000, 1500):
        assert (await post(addon_server, batch(sent[start : start + 1500])))[0] == 200
    conn = sqlite3.connect(f"file:{addon_server.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        got = conn.execute(
            "SELECT json_extract(attributes, '$.reading'), outdoor_temperature"
            " FROM events_enriched ORDER BY time_fired"
        ).fetchall()
        attribute_sets = conn.execute("SELECT COUNT(*) FROM attributes").fetchone()[0]
        snapshots = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    finally:
        conn.close()
    assert got == [(i % 5000, i / 8) for i in range(6000)]
    assert attribute_sets == 5000
    assert snapshots == 6000


async def test_time_fired_is_microsecond_exact_and_enrichment_queryable(
    addon_server: AddonProcess,
) -> None:
    event = state_event(
        7,
        time_fired="2026-11-22T11:00:00.000001+01:00",
        context_id="01JDAW3M6V2X8T9Q0RB4N5K7HC",
        context_parent_id="0123456789abcdef0123456789abcdef",
        context_user_id="9f2b1c0d8e7a6b5c4d3e2f1a0b9c8d7e",
    )
    await post(addon_server, batch([event]))
    conn = sqlite3.connect(f"file:{addon_server.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT time_fired, area, floor, device_manufacturer, cause, cause_name,"
            " weather_condition, people_home, state, json_extract(labels, '$[1]')"
            " FROM events_enriched WHERE area = 'Living Room' AND cause = 'device'"
        ).fetchone()
    finally:
        conn.close()
    # 10:00:00.000001 UTC, to the microsecond.
    assert row == (1795341600000001, "Living Room", "Ground floor", "Aqara", "device", "zha",
                   "cloudy", 2, "27.5", "downstairs")  # fmt: skip
    _, page = await get(addon_server, "/api/v1/events")
    stored = page["events"][0]
    assert stored["time_fired"] == "2026-11-22T10:00:00.000001+00:00"
    for key in ("context_id", "context_parent_id", "context_user_id", "labels", "attributes"):
        assert stored[key] == event[key]


async def test_restart_reads_everything_back(addon_server: AddonProcess) -> None:
    sent = [state_event(i) for i in range(30)] + [service_event(i) for i in range(5)]
    for chunk in (sent[:10], sent[10:20], sent[20:]):
        assert (await post(addon_server, batch(chunk)))[0] == 200
    last = batch([state_event(99)], batch_id="last-one")
    await post(addon_server, last)
    addon_server.kill()  # crash: no shutdown code runs; acked batches must survive
    addon_server.start()
    assert addon_server.row_count() == 36
    # The dedup memory survived too.
    assert (await post(addon_server, last))[1]["duplicate"] is True
    addon_server.stop()
    addon_server.start()
    status, page = await get(addon_server, "/api/v1/events?limit=1000")
    assert status == 200
    by_context = {e["context_id"]: e for e in page["events"]}
    for event in [*sent, *last["events"]]:
        got = dict(by_context[event["context_id"]])
        got.pop("id")
        assert got == {k: v for k, v in event.items() if v is not None}
