"""GET /api/v1/events and GET /api/v1/history/{entity_id}."""

from __future__ import annotations

from functools import partial
from typing import Any, Final

from aiohttp import web

from ..contract import Event
from ..server.keys import STORE
from ..server.openapi import (
    STRING,
    TIME,
    add_paths,
    answer,
    error_answer,
    operation,
    path_param,
    query,
    ref,
)
from ..server.params import bad_param, choice_param, int_param, parse_int, time_param
from ..server.responses import json_response
from ..times import US_PER_DAY, now_us
from .providers import HISTORY
from .queries import EventFilter, list_events, raw_history

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
        raise bad_param("cursor", "not a cursor from a previous answer")
    return time_us, after_id


async def events(request: web.Request) -> web.Response:
    q = request.query
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
    found, last = await request.app[STORE].read(partial(list_events, f=f))
    # From the stored time, not the text: a time a datetime cannot hold reads as the
    # end of its range, which would make a wrong cursor.
    cursor = None if last is None else f"{last[0]}_{last[1]}"
    return json_response({"events": found, "next_cursor": cursor})


async def history(request: web.Request) -> web.Response:
    entity_id = request.match_info["entity_id"]
    end = time_param(request, "end")
    end = now_us() if end is None else end
    start = time_param(request, "start")
    start = end - US_PER_DAY if start is None else start
    limit = int_param(request, "limit", 1000, 1, 10_000)
    resolution = choice_param(request, "resolution", "raw", RESOLUTIONS)
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
        raise bad_param("resolution", f"{resolution} rollups are not available")
    return json_response({"entity_id": entity_id, "resolution": resolution, "points": points})


class StoredEvent(Event, kw_only=True):
    """An event as /events answers it: as ingested (null fields left out), plus its id."""

    id: int


_EVENTS_PAGE: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["events", "next_cursor"],
    "properties": {
        "events": {"type": "array", "items": ref(StoredEvent)},
        "next_cursor": {
            "type": ["string", "null"],
            "description": "pass as cursor for the next page; null on the last one",
        },
    },
}
_HISTORY: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["entity_id", "resolution", "points"],
    "properties": {
        "entity_id": STRING,
        "resolution": {"enum": list(RESOLUTIONS)},
        "points": {"type": "array", "items": {"type": "object"}},
    },
}
PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/events": {
        "get": operation(
            "Stored events, newest first, with cursor pagination",
            {"200": answer("a page of events", _EVENTS_PAGE), "400": error_answer("bad parameter")},
            parameters=[
                query("entity_id", "exact entity id"),
                query("domain", "domain"),
                query("event_type", "event type"),
                query("area", "area name or area id"),
                query("start", "inclusive ISO 8601 time", TIME),
                query("end", "exclusive ISO 8601 time", TIME),
                query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
                query("cursor", "next_cursor of the previous page"),
            ],
        )
    },
    "/api/v1/history/{entity_id}": {
        "get": operation(
            "An entity's states over time (raw) or its rollups (hour, day)",
            {"200": answer("points, oldest first", _HISTORY), "400": error_answer("bad parameter")},
            parameters=[
                path_param("entity_id"),
                query("start", "inclusive ISO 8601 time (default: end - 24 h)", TIME),
                query("end", "exclusive ISO 8601 time (default: now)", TIME),
                query("limit", "points", {"type": "integer", "minimum": 1, "maximum": 10000}),
                query("resolution", "raw, hour or day", {"enum": list(RESOLUTIONS)}),
            ],
        )
    },
}


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/events", events)
    app.router.add_get("/api/v1/history/{entity_id}", history)
    add_paths(app, PATHS, (StoredEvent,))
