"""HTTP routes of the backups (list, create, restore, delete) and the daily backup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from datetime import UTC, datetime
import logging
from pathlib import Path
import re
import sqlite3
from typing import Final

from aiohttp import web

from ..retention.service import next_daily
from ..server.keys import CONFIG, STORE
from ..server.responses import error, json_response
from ..store.migrations import MIGRATIONS, SchemaTooNew
from ..store.schema_check import InvalidDatabase
from .service import (
    STAGED,
    backup_dir,
    create_backup,
    discard,
    list_backups,
    prune,
    restore_into,
    stage,
)

_LOGGER = logging.getLogger(__name__)
LOCK = web.AppKey("homeiq_backup_lock", asyncio.Lock)
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.db$")


def resolve(data_dir: Path, name: str) -> Path:
    if not _NAME_RE.match(name):
        raise web.HTTPBadRequest(text=f"name: {name!r} is not a backup file name")
    path = backup_dir(data_dir) / name
    if not path.is_file():
        raise web.HTTPNotFound(text=f"no backup named {name!r}")
    return path


async def get_backups(request: web.Request) -> web.Response:
    data_dir = request.app[CONFIG].data_dir
    return json_response({"backups": await asyncio.to_thread(list_backups, data_dir)})


async def post_backup(request: web.Request) -> web.Response:
    async with request.app[LOCK]:
        info = await asyncio.to_thread(
            create_backup, request.app[STORE], request.app[CONFIG].data_dir
        )
    return json_response(info, 201)


async def restore(request: web.Request) -> web.Response:
    store = request.app[STORE]
    data_dir = request.app[CONFIG].data_dir
    path = resolve(data_dir, request.match_info["name"])
    staged = backup_dir(data_dir) / STAGED
    async with request.app[LOCK]:
        try:
            page_size = await store.read(lambda c: c.execute("PRAGMA page_size").fetchone()[0])
            try:
                version = await asyncio.to_thread(stage, path, staged, page_size)
            except (InvalidDatabase, SchemaTooNew) as err:
                return error(422, "invalid_backup", str(err))
            except (OSError, sqlite3.Error) as err:
                return error(
                    507,
                    "restore_failed",
                    f"could not prepare {path.name} for the restore ({err}); nothing was restored",
                )
            try:
                kept = await asyncio.to_thread(create_backup, store, data_dir, "before-restore")
            except (OSError, sqlite3.Error) as err:
                return error(
                    507,
                    "backup_failed",
                    f"could not keep a copy of the current data first ({err});"
                    " nothing was restored",
                )
            await store.write(lambda c: restore_into(c, staged, store), transaction=False)
        finally:
            await asyncio.to_thread(discard, staged)
    events = await store.read(
        lambda c: c.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    )
    _LOGGER.info("Restored backup %s; the data it replaced is in %s", path.name, kept["name"])
    return json_response({"restored": path.name, "schema_version": len(MIGRATIONS),
                          "backup_schema_version": version, "events_stored": events,
                          "previous_data": kept["name"]})  # fmt: skip


async def delete(request: web.Request) -> web.Response:
    path = resolve(request.app[CONFIG].data_dir, request.match_info["name"])
    path.unlink(missing_ok=True)
    return json_response({"deleted": path.name})


async def scheduler(app: web.Application) -> None:
    """A backup every day at backup_schedule, keeping the newest backup_keep (0 = off)."""
    config = app[CONFIG]
    if config.backup_keep <= 0:
        return
    while True:
        now = datetime.now(UTC).astimezone()
        due = next_daily(config.backup_schedule, now)
        if due is None:
            return
        await asyncio.sleep((due - now).total_seconds())
        try:
            async with app[LOCK]:
                await asyncio.to_thread(create_backup, app[STORE], config.data_dir)
                await asyncio.to_thread(prune, config.data_dir, config.backup_keep)
        except Exception:
            _LOGGER.exception("Scheduled backup failed")


async def _daily_backups(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(scheduler(app), name="homeiq-backups")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    app[LOCK] = asyncio.Lock()
    app.cleanup_ctx.append(_daily_backups)
    app.router.add_get("/api/v1/backups", get_backups)
    app.router.add_post("/api/v1/backups", post_backup)
    app.router.add_post("/api/v1/backups/{name}/restore", restore)
    app.router.add_delete("/api/v1/backups/{name}", delete)
