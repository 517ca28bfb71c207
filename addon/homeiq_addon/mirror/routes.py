"""HTTP routes of the mirror: its targets, a connection test, a backfill; and its tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web
import msgspec

from ..contract import MirrorTarget
from ..server.keys import CONFIG, MIRROR_REPORT, STORE
from ..server.openapi import add_paths, answer, error_answer, operation, path_param, ref
from ..server.responses import json_response, struct_response
from .service import Mirror

MIRROR = web.AppKey("homeiq_mirror", Mirror)


async def targets(request: web.Request) -> web.Response:
    body = msgspec.json.encode({"targets": await request.app[MIRROR].report()})
    return web.Response(body=body, content_type="application/json")


async def test_connection(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    reached = await request.app[MIRROR].test(name)
    return json_response(
        {
            "name": name,
            "reachable": True,
            "build": reached.build,
            "version": reached.version,
            "round_trip_ms": reached.round_trip_ms,
        }
    )


async def backfill(request: web.Request) -> web.Response:
    mirror = request.app[MIRROR]
    name = request.match_info["name"]
    return struct_response(await mirror.backfill(name), 202)


async def _mirroring(app: web.Application) -> AsyncIterator[None]:
    mirror = app[MIRROR]
    await mirror.start()
    yield
    await mirror.stop()


_NAME: Final = [path_param("name")]
_TARGETS: Final = {
    "type": "object",
    "properties": {"targets": {"type": "array", "items": ref(MirrorTarget)}},
    "required": ["targets"],
}
_REACHED: Final = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "reachable": {"type": "boolean"},
        "build": {"type": ["string", "null"]},
        "version": {"type": ["string", "null"]},
        "round_trip_ms": {"type": "number"},
    },
    "required": ["name", "reachable", "build", "version", "round_trip_ms"],
}
PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/mirror/targets": {
        "get": operation(
            "The mirror's targets: status, lag, points written and refused, last error",
            {"200": answer("every configured target, in the options' order", _TARGETS)},
        )
    },
    "/api/v1/mirror/targets/{name}/test": {
        "post": operation(
            "Write no points to the target: it checks the URL, token, org and bucket",
            {
                "200": answer("the target took the write", _REACHED),
                "404": error_answer("no such target"),
                "502": error_answer(
                    "target_refused_access (token, org, bucket, TLS), target_unavailable,"
                    " or target_refused_points"
                ),
            },
            parameters=_NAME,
        )
    },
    "/api/v1/mirror/targets/{name}/backfill": {
        "post": operation(
            "Send every stored event (and rollup) to the target again, from the first;"
            " the engine keeps each point once",
            {
                "202": answer("the backfill started", ref(MirrorTarget)),
                "404": error_answer("no such target"),
                "409": error_answer("the target is disabled"),
            },
            parameters=_NAME,
        )
    },
}


def setup(app: web.Application) -> None:
    mirror = Mirror(app[STORE], app[CONFIG])
    app[MIRROR] = mirror
    app[MIRROR_REPORT] = mirror.report
    app.router.add_get("/api/v1/mirror/targets", targets)
    app.router.add_post("/api/v1/mirror/targets/{name}/test", test_connection)
    app.router.add_post("/api/v1/mirror/targets/{name}/backfill", backfill)
    app.cleanup_ctx.append(_mirroring)
    add_paths(app, PATHS, (MirrorTarget,))
