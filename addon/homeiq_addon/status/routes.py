"""GET /api/v1/health: healthy, degraded (recent alerts) or unhealthy (store unreadable)."""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from aiohttp import web

from .. import API_VERSION, __version__
from ..server.keys import RUNTIME, STORE
from ..server.responses import json_response
from ..store.codec import us_to_iso

_LOGGER = logging.getLogger(__name__)


def _store_info(conn: sqlite3.Connection) -> dict[str, Any]:
    events = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    last = conn.execute("SELECT MAX(received_us) FROM batches").fetchone()[0]
    return {"events_stored": int(events), "last_ingest_us": last}


async def health(request: web.Request) -> web.Response:
    store = request.app[STORE]
    runtime = request.app[RUNTIME]
    try:
        info = await store.read(_store_info)
    except Exception:
        _LOGGER.exception("health: the database cannot be read")
        info = None
    if info is None:
        status = "unhealthy"
    else:
        from .service import recent_alerts  # noqa: PLC0415 - stats imports this module

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


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health)
