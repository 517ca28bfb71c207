"""GET /api/v1/events and GET /api/v1/history/{entity_id}."""

from __future__ import annotations

from functools import partial
import time

from aiohttp import web

from ..server.keys import STORE
from ..server.params import BadParam, choice_param, int_param, parse_int, time_param
from ..server.responses import json_response
from .providers import HISTORY
from .queries import EventFilter, list_events, raw_history

_DAY_US = 86_400_000_000
_INT64 = 2**63
RESOLUTIONS = ("raw", "hour", "day")


def _cursor(value: str | None) -> tuple[int, int] | None:
    """(time_fired, id) of ``<time µs>_<id>``; any 64-bit time, as stored times may be."""
    if not value:
        return None
    t, sep, row_id = value.partition("_")
    time_us, after_id = parse_int(t), parse_int(row_id)
    if (
        not sep
        or time_us is None
        or after_id is None
        or not -_INT64 <= time_us < _INT64
        or not 0 <= after_id < _INT64
    ):
        raise BadParam("cursor", "not a cursor from a previous answer")
    return time_us, after_id


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
    found, last = await request.app[STORE].read(partial(list_events, f=f))
    # From the stored time, not the text: a time a datetime cannot hold reads as the
    # end of its range, which would make a wrong cursor.
    cursor = None if last is None else f"{last[0]}_{last[1]}"
    return json_response({"events": found, "next_cursor": cursor})


async def history(request: web.Request) -> web.Response:
    entity_id = request.match_info["entity_id"]
    try:
        end = time_param(request, "end")
        end = time.time_ns() // 1000 if end is None else end
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
