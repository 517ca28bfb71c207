"""Backups of the live database: create, list, restore (checked first), delete, keep N.

Create uses SQLite's online backup in ONE step from its own read-only connection: one
read transaction, so the copy is a consistent snapshot while ingest keeps writing (WAL
readers never block the writer). Restore copies the file aside and checks the copy
completely (store/schema_check.py: integrity, and exactly the schema of a version this
add-on has) before touching anything; brings the copy, not the live database, to this
add-on's schema; keeps the live database as a backup of its own (a restore can be
undone); then copies the checked file into the live database through the store's writer
thread in a single backup step, which SQLite applies as one transaction: all or nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import logging
from pathlib import Path
import re
import shutil
import sqlite3
from typing import Any, Final

from aiohttp import web

from ..retention.service import next_daily
from ..server.keys import CONFIG, INGESTOR, STORE
from ..server.responses import error, json_response
from ..store.connection import connect
from ..store.db import Store
from ..store.migrations import MIGRATIONS, SchemaTooNew, migrate
from ..store.schema_check import InvalidDatabase, check_database

_LOGGER = logging.getLogger(__name__)
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.db$")
# Where a backup is copied to be checked and migrated before it replaces the live data.
_STAGED: Final = ".restoring"
_INCREMENTAL: Final = 2  # PRAGMA auto_vacuum, as the store sets it
LOCK = web.AppKey("homeiq_backup_lock", asyncio.Lock)


def backup_dir(data_dir: Path) -> Path:
    return data_dir / "backups"


def _describe(path: Path) -> dict[str, Any]:
    stat = path.stat()
    created = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
    return {"name": path.name, "size_bytes": stat.st_size, "created_at": created}


def list_backups(data_dir: Path) -> list[dict[str, Any]]:
    folder = backup_dir(data_dir)
    files = [p for p in folder.glob("*.db") if p.is_file()] if folder.exists() else []
    return [_describe(p) for p in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)]


def create_backup(store: Store, data_dir: Path, kind: str = "") -> dict[str, Any]:
    """Write a consistent copy of the live database (blocking; run in a thread).

    `kind` goes into the name (``homeiq-<kind>-<time>.db``), e.g. "before-restore".
    """
    folder = backup_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"homeiq-{kind}-{stamp}" if kind else f"homeiq-{stamp}"
    target = folder / f"{stem}.db"
    n = 1
    while target.exists():
        target, n = folder / f"{stem}-{n}.db", n + 1
    partial = target.with_suffix(".partial")
    source = connect(store.path, readonly=True)
    try:
        dest = sqlite3.connect(partial)
        try:
            source.backup(dest)  # pages=-1: one step, one snapshot
            dest.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            dest.close()
    finally:
        source.close()
    partial.replace(target)
    return _describe(target)


def _discard(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def stage(path: Path, staged: Path, page_size: int) -> int:
    """Copy a backup, check the copy and bring it to this add-on's schema (blocking).

    Returns the schema version the backup had. Raises InvalidDatabase or SchemaTooNew
    (nothing was changed) and leaves ``staged`` ready to be copied into the live database:
    the live database is never migrated or rebuilt in place. ``page_size`` is the live
    database's: SQLite cannot copy a database of another page size into a WAL database.
    """
    _discard(staged)
    shutil.copyfile(path, staged)
    version = check_database(staged, path.name)  # the copy: what is checked is what is used
    conn = sqlite3.connect(staged, autocommit=True)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        try:
            migrate(conn)
        except sqlite3.Error as err:
            raise InvalidDatabase(
                f"{path.name}: cannot be brought from schema version {version} to "
                f"{len(MIGRATIONS)}: {err}"
            ) from err
        if (
            conn.execute("PRAGMA page_size").fetchone()[0] != page_size
            or conn.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL
        ):
            conn.execute(f"PRAGMA page_size = {int(page_size)}")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")  # rewrites the file with both
    finally:
        conn.close()
    return version


def _restore_into(conn: sqlite3.Connection, staged: Path, store: Store) -> None:
    """Runs on the writer thread, outside any transaction: one step, all or nothing."""
    source = sqlite3.connect(f"file:{staged}?mode=ro", uri=True)
    try:
        source.backup(conn)
    finally:
        source.close()
    store.content_replaced()


def resolve(data_dir: Path, name: str) -> Path:
    if not _NAME_RE.match(name):
        raise web.HTTPBadRequest(text=f"name: {name!r} is not a backup file name")
    path = backup_dir(data_dir) / name
    if not path.is_file():
        raise web.HTTPNotFound(text=f"no backup named {name!r}")
    return path


def prune(data_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups."""
    doomed = [b["name"] for b in list_backups(data_dir)[keep:]]
    for name in doomed:
        (backup_dir(data_dir) / name).unlink(missing_ok=True)
    return doomed


# --- HTTP ----------------------------------------------------------------------------


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
    staged = backup_dir(data_dir) / _STAGED
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
            await store.write(lambda c: _restore_into(c, staged, store), transaction=False)
        finally:
            await asyncio.to_thread(_discard, staged)
    # The 15m/1h stats count from memory: recount them from the restored events.
    await store.read(request.app[INGESTOR].recent.load)
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


def setup(app: web.Application) -> None:
    app[LOCK] = asyncio.Lock()
    app.router.add_get("/api/v1/backups", get_backups)
    app.router.add_post("/api/v1/backups", post_backup)
    app.router.add_post("/api/v1/backups/{name}/restore", restore)
    app.router.add_delete("/api/v1/backups/{name}", delete)
