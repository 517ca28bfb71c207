"""Bad input of every kind gets a 4xx naming the problem and writes nothing (invariant 7),
and a stored time no date can hold (a database of an older version) fails no reader.

Ingest is tried on both of its paths: a small body is decoded on the writer thread, a
big one (>= 64 KiB) in the decode worker process.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
import sqlite3
from typing import Any

import aiohttp
import orjson
import pytest

from homeiq_addon.contract import MAX_NESTING, TIME_EXPECTED
from homeiq_addon.ingest.worker import WORKER_MIN_BYTES
from homeiq_addon.store.compact_events import TIME_EPOCH_US
from tests.addon.factory import batch, service_event, state_event
from tests.addon.module_addon import sockets_lifted
from tests.conftest import AddonProcess, running_addon

_NESTED = '"nested here"'


def _nested(levels: int) -> bytes:
    """A JSON object nested ``levels`` deep (the object itself is level 1)."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def ingest_body(size: str, *, data: bytes | None = None, **changes: Any) -> bytes:
    """A batch whose first event has ``changes`` (and ``data`` as raw JSON text);
    ``size`` "big" pads it past the size that goes to the decode worker."""
    first = state_event(0, **changes)
    if data is not None:
        first["data"] = "nested here"
    padding = [state_event(i) for i in range(1, 300 if size == "big" else 2)]
    raw = orjson.dumps(batch([first, *padding]))
    if data is not None:
        raw = raw.replace(_NESTED.encode(), data, 1)
    assert (len(raw) >= WORKER_MIN_BYTES) == (size == "big")
    return raw


def _iso(moment: datetime) -> str:
    return moment.isoformat()


_PLUS_1H = timezone(timedelta(hours=1))
_MINUS_5H = timezone(timedelta(hours=-5))
# Times that parse, and that UTC puts outside what a datetime holds or the accepted range.
_YEAR_1 = _iso(datetime(1, 1, 1, tzinfo=_PLUS_1H))
_YEAR_9999 = _iso(datetime(9999, 12, 31, 23, 59, 59, tzinfo=_MINUS_5H))
_BEFORE_1970 = "1969-12-31T23:59:59.999999+00:00"
_YEAR_2200 = "2200-01-01T00:00:00+00:00"

_BEYOND_PARSERS = b"deeper than the parsers go"
INGEST_CASES = [
    # (id, body for a size, status, text the message must contain)
    ("time_fired_year_1", {"time_fired": _YEAR_1}, 422, f"events[0].time_fired: {TIME_EXPECTED}"),
    ("time_fired_9999", {"time_fired": _YEAR_9999}, 422, "events[0].time_fired: expected ISO"),
    ("time_fired_1969", {"time_fired": _BEFORE_1970}, 422, "events[0].time_fired: expected ISO"),
    ("time_fired_2200", {"time_fired": _YEAR_2200}, 422, "events[0].time_fired: expected ISO"),
    ("last_changed_year_1", {"last_changed": _YEAR_1}, 422, "events[0].last_changed: expected"),
    ("last_changed_9999", {"last_changed": _YEAR_9999}, 422, "events[0].last_changed: expected"),
    (
        "data_nested_too_deep",
        {"data": _nested(MAX_NESTING + 1)},
        422,
        f"events[0].data: expected object nested at most {MAX_NESTING} levels deep",
    ),
    (
        "attributes_nested_too_deep",
        {"attributes": {"forecast": [[{"deeper": 1}]]}, "@attributes": _nested(MAX_NESTING)},
        422,
        f"events[0].attributes: expected object nested at most {MAX_NESTING} levels deep",
    ),
    # Deeper than the parsers go (orjson; on the big path msgspec too): named, not a 500.
    ("data_nested_beyond_parsers", {"data": _BEYOND_PARSERS}, 400, "recursion depth exceeded"),
]


def _ingest_case(size: str, changes: dict[str, Any]) -> bytes:
    changes = dict(changes)
    data = changes.pop("data", None)
    if data == _BEYOND_PARSERS:
        # 6 bytes a level: a small body stays under the worker's size; a big one goes
        # past msgspec's recursion limit as well as orjson's.
        data = _nested(9_000 if size == "small" else 100_000)
    attributes = changes.pop("@attributes", None)
    body = ingest_body(size, data=data, **changes)
    if attributes is not None:
        # {"forecast": [[X]]}: X nested MAX_NESTING deep puts the set 3 levels deeper.
        body = body.replace(b'{"deeper":1}', attributes, 1)
    return body


@pytest.fixture(scope="module")
def shared_addon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AddonProcess]:
    """One add-on for the tables below, holding one batch already."""
    with contextlib.ExitStack() as stack:
        with sockets_lifted():
            data_dir = Path(tmp_path_factory.mktemp("bad-input")) / "data"
            server = stack.enter_context(running_addon(data_dir))
        yield server


async def request(
    server: AddonProcess, method: str, path: str, body: bytes | None = None
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{server.url}{path}", data=body, headers=server.headers) as resp,
    ):
        return resp.status, await resp.json(), resp.headers


@pytest.mark.parametrize("size", ["small", "big"])
@pytest.mark.parametrize(
    ("changes", "status", "text"), [pytest.param(*c[1:], id=c[0]) for c in INGEST_CASES]
)
async def test_bad_batch_is_refused_naming_the_problem_on_both_paths(
    shared_addon: AddonProcess,
    socket_enabled: None,
    size: str,
    changes: dict[str, Any],
    status: int,
    text: str,
) -> None:
    before = shared_addon.row_count()
    answer = await request(shared_addon, "POST", "/api/v1/ingest", _ingest_case(size, changes))
    assert answer[0] == status, answer
    assert text in answer[1]["message"], answer
    assert shared_addon.row_count() == before
    assert "Traceback" not in shared_addon.log()


@pytest.mark.parametrize("size", ["small", "big"])
async def test_the_edges_of_what_is_accepted_are_stored_and_read_back(
    addon_server: AddonProcess, size: str
) -> None:
    accepted = [
        _ingest_case(size, {"time_fired": "1970-01-01T00:00:00+00:00"}),
        _ingest_case(size, {"time_fired": "2199-12-31T23:59:59.999999+00:00"}),
        _ingest_case(size, {"data": _nested(MAX_NESTING)}),
    ]
    for body in accepted:
        status, answer, _ = await request(addon_server, "POST", "/api/v1/ingest", body)
        assert status == 200, answer
    status, page, _ = await request(addon_server, "GET", "/api/v1/events?limit=1000")
    assert status == 200, page
    times = {e["time_fired"] for e in page["events"]}
    assert {"1970-01-01T00:00:00.000000+00:00", "2199-12-31T23:59:59.999999+00:00"} <= times
    deepest = max((e.get("data") or {} for e in page["events"]), key=lambda d: len(str(d)))
    assert orjson.dumps(deepest) == _nested(MAX_NESTING)


_LIMIT = "expected integer from 1 to 1000"
# Digits Python's int() takes and a query string must not: Arabic-Indic and fullwidth 12.
_ARABIC_12 = "\u0661\u0662"
_FULLWIDTH_12 = "\uff11\uff12"
QUERY_CASES = [
    # (id, method, path, body, status, text the message must contain)
    ("cursor_arabic_indic", "GET", f"/api/v1/events?cursor={_ARABIC_12}_\u0661", None, 400,
     "cursor:"),
    ("cursor_fullwidth", "GET", f"/api/v1/events?cursor={_FULLWIDTH_12}_\uff11", None, 400,
     "cursor:"),
    ("cursor_superscript", "GET", "/api/v1/events?cursor=²_1", None, 400, "cursor:"),
    ("cursor_huge_time", "GET", "/api/v1/events?cursor=" + "9" * 30 + "_1", None, 400, "cursor:"),
    ("cursor_huge_id", "GET", "/api/v1/events?cursor=1_" + "9" * 20, None, 400, "cursor:"),
    ("cursor_negative_id", "GET", "/api/v1/events?cursor=1_-1", None, 400, "cursor:"),
    ("cursor_no_id", "GET", "/api/v1/events?cursor=12", None, 400, "cursor:"),
    ("limit_arabic_indic", "GET", f"/api/v1/events?limit={_ARABIC_12}", None, 400,
     f"limit: {_LIMIT}"),
    ("limit_fullwidth", "GET", f"/api/v1/events?limit={_FULLWIDTH_12}", None, 400,
     f"limit: {_LIMIT}"),
    ("limit_spaces", "GET", "/api/v1/events?limit=%2012%20", None, 400, f"limit: {_LIMIT}"),
    ("limit_underscore", "GET", "/api/v1/events?limit=1_0", None, 400, f"limit: {_LIMIT}"),
    ("limit_huge", "GET", "/api/v1/events?limit=" + "9" * 5000, None, 400, f"limit: {_LIMIT}"),
    ("limit_empty", "GET", "/api/v1/events?limit=", None, 400, f"limit: {_LIMIT}"),
    ("start_year_1", "GET", f"/api/v1/events?start={_YEAR_1.replace('+', '%2B')}", None, 400,
     f"start: {TIME_EXPECTED}"),
    ("end_9999", "GET", f"/api/v1/events?end={_YEAR_9999}", None, 400, "end: expected ISO"),
    ("start_empty", "GET", "/api/v1/events?start=", None, 400, "start: expected ISO"),
    ("history_limit", "GET", f"/api/v1/history/sensor.x?limit={_ARABIC_12}", None, 400,
     "limit: expected"),
    ("history_start", "GET", f"/api/v1/history/sensor.x?start={_BEFORE_1970}", None, 400,
     "start: expected ISO"),
    ("history_end", "GET", f"/api/v1/history/sensor.x?end={_YEAR_9999}", None, 400,
     "end: expected ISO"),
    ("history_resolution", "GET", "/api/v1/history/sensor.x?resolution=minute", None, 400,
     "resolution: expected one of raw, hour, day"),
    ("stats_period", "GET", "/api/v1/stats?period=\u0661h", None, 400, "period: expected one of"),
    ("export_start_year_1", "POST", "/api/v1/export",
     {"start": _YEAR_1, "end": "2026-01-01T00:00:00Z"}, 400, f"start: {TIME_EXPECTED}"),
    ("export_end_9999", "POST", "/api/v1/export",
     {"start": "2026-01-01T00:00:00Z", "end": _YEAR_9999}, 400, "end: expected ISO"),
    ("export_nested", "POST", "/api/v1/export", _nested(100_000), 400, "recursion depth"),
    ("export_format", "POST", "/api/v1/export",
     {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "format": ["csv"]}, 400,
     "format:"),
    ("run_now_year_1", "POST", "/api/v1/retention/run", {"now": _YEAR_1}, 400,
     f"now: {TIME_EXPECTED}"),
    ("run_nested", "POST", "/api/v1/retention/run", _nested(100_000), 400, "recursion depth"),
    ("policy_nested", "POST", "/api/v1/retention/policies", _nested(100_000), 400,
     "recursion depth"),
    ("policy_days_huge", "POST", "/api/v1/retention/policies",
     {"name": "a", "match_type": "entity", "pattern": "sensor.*", "raw_days": 1e308}, 422,
     "raw_days: must be at most 36500 days"),
    ("policy_days_huge_int", "POST", "/api/v1/retention/policies",
     b'{"name": "a", "match_type": "entity", "pattern": "sensor.*", "raw_days": 1' + b"0" * 40
     + b"}", 422,
     "raw_days: must be at most 36500 days"),
    ("policy_pattern_object", "POST", "/api/v1/retention/policies",
     {"name": "a", "match_type": "entity", "pattern": {}, "raw_days": 1}, 422, "pattern:"),
    ("policy_put_default_shape", "PUT", "/api/v1/retention/policies/default",
     {"raw_days": 1, "hourly_days": 1, "daily_days": 1, "match_type": "entity"}, 422,
     "match_type:"),
    ("backup_delete_bad_name", "DELETE", "/api/v1/backups/notes.txt", None, 400,
     "name: 'notes.txt' is not a backup file name"),
    ("backup_restore_bad_name", "POST", "/api/v1/backups/..%2Fhomeiq.db/restore", None, 400,
     "name: '../homeiq.db' is not a backup file name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [pytest.param(*c[1:], id=c[0]) for c in QUERY_CASES],
)
async def test_bad_parameter_or_body_is_refused_naming_it(
    shared_addon: AddonProcess,
    socket_enabled: None,
    method: str,
    path: str,
    body: Any,
    status: int,
    text: str,
) -> None:
    before = shared_addon.row_count()
    raw = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
    answer = await request(shared_addon, method, path, raw)
    assert answer[0] == status, answer
    assert set(answer[1]) == {"error", "message"}
    assert text in answer[1]["message"], answer
    assert shared_addon.row_count() == before
    assert "Traceback" not in shared_addon.log()


async def test_unsupported_method_answers_405_with_allow(
    shared_addon: AddonProcess, socket_enabled: None
) -> None:
    status, answer, headers = await request(shared_addon, "PATCH", "/api/v1/events")
    assert status == 405
    assert answer["error"] == "method_not_allowed"
    assert set(headers["Allow"].split(",")) == {"GET", "HEAD"}


async def test_deeply_nested_websocket_message_gets_an_error_and_the_stream_goes_on(
    shared_addon: AddonProcess, socket_enabled: None
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{shared_addon.url}/api/v1/ws", headers=shared_addon.headers) as ws,
    ):
        await ws.send_str("[" * 100_000 + "]" * 100_000)
        await ws.send_str('{"type": "subscribe", "domain": "light"}')
        answers = []
        while len(answers) < 2:
            message = await ws.receive_json(timeout=10)
            if message["type"] != "rate":
                answers.append(message)
    assert answers[0] == {"type": "error", "message": 'expected {"type": "subscribe", ...}'}
    assert answers[1] == {"type": "subscribed", "domain": ["light"]}
    assert "Traceback" not in shared_addon.log()


# --- what an older version may have stored ----------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OLD_TIMES_US = [
    (datetime(1, 1, 1, tzinfo=_PLUS_1H) - _EPOCH) // timedelta(microseconds=1),
    (datetime(9999, 12, 31, 23, 59, 59, tzinfo=_MINUS_5H) - _EPOCH) // timedelta(microseconds=1),
]
_ENTITY = "sensor.living_room_temperature_0"
_HOUR_US = 3_600_000_000


def _store_old_rows(server: AddonProcess) -> list[int]:
    """Copies of a stored event at the old times, as an older version wrote them (with
    their hours marked for rollups); one with a last_changed far beyond the range."""
    conn = sqlite3.connect(server.data_dir / "homeiq.db")
    try:
        with conn:
            (source,) = conn.execute(
                "SELECT e.id FROM events e JOIN entities n ON n.id = e.entity_ref"
                " WHERE n.entity_id = ? LIMIT 1",
                (_ENTITY,),
            ).fetchone()
            # The stored columns but the id and the time (table_info leaves out the
            # columns computed from them: time_fired from time_since_2026).
            columns = [
                r[1]
                for r in conn.execute("PRAGMA table_info(events)")
                if r[1] not in ("id", "time_since_2026")
            ]
            ids = []
            for t in _OLD_TIMES_US:
                for ago in (0, -(2**62)):
                    cursor = conn.execute(
                        f"INSERT INTO events (time_since_2026, {', '.join(columns)})"
                        f" SELECT ?, {', '.join(columns)} FROM events WHERE id = ?",
                        (t - TIME_EPOCH_US, source),
                    )
                    assert cursor.lastrowid is not None
                    ids.append(cursor.lastrowid)
                    conn.execute(
                        "UPDATE events SET last_changed_ago = ? WHERE id = ?", (ago, ids[-1])
                    )
                conn.execute("INSERT OR IGNORE INTO dirty_hours VALUES (?)", (t // _HOUR_US,))
    finally:
        conn.close()
    return ids


_READERS = [
    ("GET", "/api/v1/events", None),
    ("GET", f"/api/v1/events?entity_id={_ENTITY}", None),
    ("GET", "/api/v1/events?domain=sensor&limit=1000", None),
    ("GET", f"/api/v1/history/{_ENTITY}", None),
    ("GET", f"/api/v1/history/{_ENTITY}?start=1970-01-01T00:00:00Z&end=2199-01-01T00:00:00Z", None),
    ("GET", f"/api/v1/history/{_ENTITY}?resolution=hour&start=1970-01-01T00:00:00Z", None),
    ("GET", f"/api/v1/history/{_ENTITY}?resolution=day&start=1970-01-01T00:00:00Z", None),
    *(("GET", f"/api/v1/stats?period={period}", None) for period in ("15m", "1h", "24h", "7d")),
    ("GET", "/api/v1/event-rate", None),
    ("GET", "/api/v1/health", None),
    ("GET", "/api/v1/retention/stats", None),
    ("GET", "/api/v1/retention/policies", None),
    ("GET", "/api/v1/backups", None),
    ("POST", "/api/v1/export", {"start": "1970-01-01T00:00:00Z", "end": "2199-01-01T00:00:00Z"}),
    ("POST", "/api/v1/retention/run", {"dry_run": True}),
]


async def _read_everything(server: AddonProcess) -> None:
    for method, path, body in _READERS:
        raw = None if body is None else orjson.dumps(body)
        status, answer, _ = await request(server, method, path, raw)
        assert status in (200, 201), (method, path, answer)


async def test_every_reader_answers_over_times_no_date_can_hold(
    addon_server: AddonProcess,
) -> None:
    await request(
        addon_server,
        "POST",
        "/api/v1/ingest",
        orjson.dumps(batch([state_event(i) for i in range(14)] + [service_event(0)])),
    )
    old = _store_old_rows(addon_server)
    await _read_everything(addon_server)

    # Paging with the cursor walks every row, those at the old times included.
    seen: list[dict[str, Any]] = []
    path = "/api/v1/events?limit=2"
    while True:
        status, page, _ = await request(addon_server, "GET", path)
        assert status == 200, page
        seen += page["events"]
        if page["next_cursor"] is None:
            break
        path = f"/api/v1/events?limit=2&cursor={page['next_cursor']}"
    assert len(seen) == addon_server.row_count() == 15 + len(old)
    times = {e["time_fired"] for e in seen if e["id"] in old}
    assert times == {"0001-01-01T00:00:00.000000+00:00", "9999-12-31T23:59:59.999999+00:00"}

    # A real run rolls the old hours up and removes the year-1 rows; reading goes on.
    status, report, _ = await request(addon_server, "POST", "/api/v1/retention/run", b"{}")
    assert status == 200, report
    assert report["status"] == "ok", report
    assert addon_server.row_count() == 15 + len(old) // 2
    await _read_everything(addon_server)
    assert "Traceback" not in addon_server.log()
