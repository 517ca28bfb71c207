"""HTTP routes of the backups (list, create, restore, delete), and the daily backup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from typing import Any, Final

from aiohttp import web

from ..server.keys import CONFIG, STORE
from ..server.openapi import add_paths, answer, error_answer, operation, path_param
from ..server.responses import json_response
from .service import BackupService

BACKUPS = web.AppKey("homeiq_backups", BackupService)


async def get_backups(request: web.Request) -> web.Response:
    return json_response({"backups": await request.app[BACKUPS].existing()})


async def post_backup(request: web.Request) -> web.Response:
    return json_response(await request.app[BACKUPS].create(), 201)


async def restore(request: web.Request) -> web.Response:
    return json_response(await request.app[BACKUPS].restore(request.match_info["name"]))


async def delete(request: web.Request) -> web.Response:
    return json_response({"deleted": await request.app[BACKUPS].delete(request.match_info["name"])})


async def _daily_backups(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[BACKUPS].daily(), name="homeiq-backups")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


_NAME: Final = [path_param("name")]
PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/backups": {
        "get": operation("Backups, newest first", {"200": answer("backups")}),
        "post": operation(
            "Create a consistent backup while ingest goes on", {"201": answer("the new backup")}
        ),
    },
    "/api/v1/backups/{name}/restore": {
        "post": operation(
            "Restore a backup after checking its integrity and its whole schema (an older"
            " version's is migrated on a copy); the data it replaces is kept as a new backup"
            " (previous_data)",
            {
                "200": answer("restored"),
                "400": error_answer("bad name"),
                "404": error_answer("unknown"),
                "422": error_answer("corrupt, foreign or altered file; live data untouched"),
                "507": error_answer(
                    "no room for the checked copy or to keep the current data first;"
                    " live data untouched"
                ),
            },
            parameters=_NAME,
        ),
    },
    "/api/v1/backups/{name}": {
        "delete": operation(
            "Delete a backup",
            {
                "200": answer("deleted"),
                "400": error_answer("bad name"),
                "404": error_answer("unknown"),
            },
            parameters=_NAME,
        ),
    },
}


def setup(app: web.Application) -> None:
    app[BACKUPS] = BackupService(app[STORE], app[CONFIG])
    app.cleanup_ctx.append(_daily_backups)
    app.router.add_get("/api/v1/backups", get_backups)
    app.router.add_post("/api/v1/backups", post_backup)
    app.router.add_post("/api/v1/backups/{name}/restore", restore)
    app.router.add_delete("/api/v1/backups/{name}", delete)
    add_paths(app, PATHS)
