"""GET /api/v1/events and GET /api/v1/history/{entity_id}."""

from __future__ import annotations

from functools import partial
import time

from aiohttp import web

from .context import HISTORY, STORE
from .params import BadParam, choice_param, int_param, time_param
from .responses import json_response
from .store.queries import EventFilter, list_events, raw_history

_DAY_US = 86_400_000_000
RESOLUTIONS = ("raw", "hour", "day")


def _cursor(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    t, sep, row_id = value.partition("_")
    if not sep or not t.lstrip("-").isdigit() or not row_id.isdigit():
        raise BadParam("cursor", "not a cursor from a previous answer")
    return int(t), int(row_id)


async def events(request: web.Request) -> web.Response:
    q = request.query
    try:
        f = EventFilter(
            entity_id=q.get("entity_id") or None,
            domain=q.get("domain") or None,
            event_type=q.get("event_type") or None,
            area=q.get("area") or None,
            start_us=time_param(request, "start"),
            end_us=time_param(request, "end"),
            limit=int_param(request, "limit", 100, 1, 1000),
            after=_cursor(q.get("cursor")),
        )
    except BadParam as err:
        return err.response
    found, more = await request.app[STORE].read(partial(list_events, f=f))
    cursor = None
    if more and found:
        last = found[-1]
        cursor = f"{_time_of(last['time_fired'])}_{last['id']}"
    return json_response({"events": found, "next_cursor": cursor})


def _time_of(iso: str) -> int:
    from .schema import parse_time_us  # noqa: PLC0415 - tiny helper, avoids a cycle

    value = parse_time_us(iso)
    assert value is not None
    return value


async def history(request: web.Request) -> web.Response:
    entity_id = request.match_info["entity_id"]
    try:
        end = time_param(request, "end") or time.time_ns() // 1000
        start = time_param(request, "start")
        start = end - _DAY_US if start is None else start
        limit = int_param(request, "limit", 1000, 1, 10_000)
        resolution = choice_param(request, "resolution", "raw", RESOLUTIONS)
    except BadParam as err:
        return err.response
    store = request.app[STORE]
    provider = request.app[HISTORY].get(resolution)
    if provider is not None:
        # Rollups (and raw history once raw events are purged) come from retention.
        points = await provider(store, entity_id, start, end, limit)
    elif resolution == "raw":
        points = await store.read(
            partial(raw_history, entity_id=entity_id, start_us=start, end_us=end, limit=limit)
        )
    else:
        return BadParam("resolution", f"{resolution} rollups are not available").response
    return json_response({"entity_id": entity_id, "resolution": resolution, "points": points})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/events", events)
    app.router.add_get("/api/v1/history/{entity_id}", history)
