"""GET /api/v1/health, /api/v1/stats and /api/v1/event-rate.

Health is healthy, degraded (recent alerts) or unhealthy (store unreadable).
"""

from __future__ import annotations

from functools import partial
import logging
import time

from aiohttp import web

from .. import API_VERSION, __version__
from ..live.stream import HUB
from ..server.keys import RUNTIME, STORE
from ..server.params import BadParam, choice_param
from ..server.responses import json_response
from ..store.codec import us_to_iso
from .service import (
    PERIODS,
    RATE_HISTORY_MINUTES,
    compute_stats,
    minute_counts,
    recent_alerts,
    store_info,
)

_LOGGER = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    store = request.app[STORE]
    runtime = request.app[RUNTIME]
    try:
        info = await store.read(store_info)
    except Exception:
        _LOGGER.exception("health: the database cannot be read")
        info = None
    if info is None:
        status = "unhealthy"
    else:
        status = "degraded" if await recent_alerts(store) else "healthy"
    code = 503 if status == "unhealthy" else 200
    if request.query.get("minimal") == "1":
        return json_response({"status": status}, code)
    last = None if info is None else info["last_ingest_us"]
    return json_response(
        {
            "status": status,
            "version": __version__,
            "api_version": API_VERSION,
            "schema_version": store.schema_version,
            "instance_id": runtime.instance_id,
            "uptime_seconds": round(time.monotonic() - runtime.started, 3),
            "db_size_bytes": store.size_bytes(),
            "events_stored": None if info is None else info["events_stored"],
            "last_ingest": None if last is None else us_to_iso(last),
        },
        code,
    )


async def stats(request: web.Request) -> web.Response:
    try:
        period = choice_param(request, "period", "24h", tuple(PERIODS))
    except BadParam as err:
        return err.response
    store = request.app[STORE]
    now_us = time.time_ns() // 1000
    answer = await store.read(
        partial(
            compute_stats,
            period=period,
            now_us=now_us,
            recent=store.counts.recent,
            unsettled=store.counts.unsettled,
        )
    )
    answer["store"]["db_size_bytes"] = store.size_bytes()
    return json_response(answer)


async def event_rate(request: web.Request) -> web.Response:
    answer = request.app[HUB].meter.snapshot()
    answer["minutes"] = await request.app[STORE].read(
        partial(minute_counts, now_us=time.time_ns() // 1000, minutes=RATE_HISTORY_MINUTES)
    )
    return json_response(answer)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/event-rate", event_rate)
