"""GET /api/v1/health, /api/v1/stats and /api/v1/event-rate.

Health is healthy, degraded (recent alerts) or unhealthy (store unreadable).
"""

from __future__ import annotations

from functools import partial
import logging
import time
from typing import Any, Final, cast

from aiohttp import web
import msgspec

from .. import __version__
from ..contract import (
    API_VERSION,
    FEATURE_BATCH_COLUMNS,
    FEATURE_BATCH_ENTITIES,
    STATS_PERIODS,
    Health,
    HealthMinimal,
    HealthStatus,
    MirrorTarget,
    Stats,
    StatsPeriod,
)
from ..live.stream import HUB
from ..server.keys import MIRROR_REPORT, RUNTIME, STORE
from ..server.openapi import add_paths, answer, error_answer, operation, query, ref
from ..server.params import choice_param
from ..server.responses import json_response, struct_response
from ..times import now_us, us_to_iso
from .latencies import LatencyWindows
from .service import (
    RATE_HISTORY_MINUTES,
    compute_stats,
    minute_counts,
    recent_alerts,
    store_info,
)

_LOGGER = logging.getLogger(__name__)


async def _mirror(app: web.Application) -> list[MirrorTarget]:
    report = app.get(MIRROR_REPORT)
    return [] if report is None else await report()


async def health(request: web.Request) -> web.Response:
    store = request.app[STORE]
    runtime = request.app[RUNTIME]
    try:
        info = await store.read(store_info)
    except Exception:
        _LOGGER.exception("health: the database cannot be read")
        info = None
    status: HealthStatus
    if info is None:
        status = "unhealthy"
    else:
        status = "degraded" if await recent_alerts(store) else "healthy"
    code = 503 if status == "unhealthy" else 200
    if request.query.get("minimal") == "1":
        return struct_response(HealthMinimal(status), code)
    last = None if info is None else info["last_ingest_us"]
    report = Health(
        status=status,
        version=__version__,
        api_version=API_VERSION,
        schema_version=store.schema_version,
        instance_id=runtime.instance_id,
        uptime_seconds=round(time.monotonic() - runtime.started, 3),
        db_size_bytes=store.size_bytes(),
        events_stored=None if info is None else info["events_stored"],
        last_ingest=None if last is None else us_to_iso(last),
        mirror=[] if info is None else await _mirror(request.app),
        features=[FEATURE_BATCH_ENTITIES, FEATURE_BATCH_COLUMNS],
    )
    return struct_response(report, code)


async def stats(request: web.Request) -> web.Response:
    period = cast("StatsPeriod", choice_param(request, "period", "24h", STATS_PERIODS))
    store = request.app[STORE]
    computed = await store.read(
        partial(
            compute_stats,
            period=period,
            now_us=now_us(),
            last_hour=store.counts.last_hour,
            unindexed=store.counts.unindexed,
            hour_sums=store.hour_sums,
            latencies=request.app[LATENCIES],
            db_size_bytes=store.size_bytes(),
        )
    )
    return struct_response(msgspec.structs.replace(computed, mirror=await _mirror(request.app)))


async def event_rate(request: web.Request) -> web.Response:
    rates = request.app[HUB].meter.rates()
    rates["minutes"] = await request.app[STORE].read(
        partial(minute_counts, now_us=now_us(), minutes=RATE_HISTORY_MINUTES)
    )
    return json_response(rates)


_HEALTH: Final = {"anyOf": [ref(Health), ref(HealthMinimal)]}
PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/stats": {
        "get": operation(
            "Metrics, trends and alerts over a period (from counters)",
            {
                "200": answer("stats; rates in percent", ref(Stats)),
                "400": error_answer("bad period"),
            },
            parameters=[query("period", "window", {"enum": list(STATS_PERIODS)})],
        )
    },
    "/api/v1/event-rate": {
        "get": operation("Events accepted over the last minute", {"200": answer("rate")})
    },
    "/api/v1/health": {
        "get": {
            **operation(
                "healthy, degraded (recent alerts) or unhealthy (store unreadable)",
                {
                    "200": answer("health (only its status with minimal=1)", _HEALTH),
                    "503": answer("unhealthy: the store cannot be read", _HEALTH),
                },
                parameters=[query("minimal", "1: only {status}, no token needed", {"enum": ["1"]})],
            ),
            # minimal=1 answers without the token (the container's health check).
            "security": [{"bearer": []}, {}],
        }
    },
}


LATENCIES = web.AppKey("homeiq_stats_latencies", LatencyWindows)


def setup(app: web.Application) -> None:
    app[LATENCIES] = LatencyWindows()
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/event-rate", event_rate)
    add_paths(app, PATHS, (Health, HealthMinimal, Stats))
