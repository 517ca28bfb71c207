"""Backups of the live database: create, list, restore (checked first), delete, keep N.

Create uses SQLite's online backup in ONE step from its own read-only connection: one
read transaction, so the copy is a consistent snapshot while ingest keeps writing (WAL
readers never block the writer). Restore validates the file completely before touching
anything, keeps the live database as a backup of its own (a restore can be undone), then
copies the file into the live database through the store's writer thread in a single
backup step, which SQLite applies as one transaction: all or nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import logging
from pathlib import Path
import re
import sqlite3
from typing import Any, Final

from aiohttp import web

from .context import CONFIG, INGESTOR, STORE
from .responses import error, json_response
from .retention.service import next_daily
from .store.connection import connect
from .store.db import Store
from .store.migrations import MIGRATIONS, migrate

_LOGGER = logging.getLogger(__name__)
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.db$")
# Tables any HomeIQ database has; a SQLite file without them is someone else's.
_REQUIRED: Final = ("events", "entities", "event_types", "dirty_hours", "counters")
LOCK = web.AppKey("homeiq_backup_lock", asyncio.Lock)


class BackupInvalid(ValueError):
    """The file cannot be restored; the message says why."""


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


def check_backup(path: Path) -> int:
    """Integrity, identity and schema version of a backup file; returns its version."""
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise BackupInvalid(f"{path.name}: not a SQLite database")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise BackupInvalid(f"{path.name}: cannot be opened: {err}") from err
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
        if result != ["ok"]:
            raise BackupInvalid(f"{path.name}: integrity check failed: {'; '.join(result)}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in _REQUIRED if t not in tables]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as err:
        raise BackupInvalid(f"{path.name}: integrity check failed: {err}") from err
    finally:
        conn.close()
    if missing or version < 1:
        raise BackupInvalid(f"{path.name}: not a HomeIQ database (missing {', '.join(missing)})")
    if version > len(MIGRATIONS):
        raise BackupInvalid(
            f"{path.name}: schema version {version} is newer than this add-on's "
            f"({len(MIGRATIONS)}); upgrade the add-on first"
        )
    return version


def _restore_into(conn: sqlite3.Connection, path: Path, store: Store) -> int:
    """Runs on the writer thread, outside any transaction."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        source.backup(conn)
    finally:
        source.close()
    version = migrate(conn)  # an older backup is brought up to this add-on's schema
    store.content_replaced()
    return version


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
    path = resolve(request.app[CONFIG].data_dir, request.match_info["name"])
    async with request.app[LOCK]:
        try:
            await asyncio.to_thread(check_backup, path)
        except BackupInvalid as err:
            return error(422, "invalid_backup", str(err))
        data_dir = request.app[CONFIG].data_dir
        try:
            kept = await asyncio.to_thread(create_backup, store, data_dir, "before-restore")
        except (OSError, sqlite3.Error) as err:
            return error(
                507,
                "backup_failed",
                f"could not keep a copy of the current data first ({err}); nothing was restored",
            )
        version = await store.write(lambda c: _restore_into(c, path, store), transaction=False)
    # The 15m/1h stats count from memory: recount them from the restored events.
    await store.read(request.app[INGESTOR].recent.load)
    events = await store.read(
        lambda c: c.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    )
    _LOGGER.info("Restored backup %s; the data it replaced is in %s", path.name, kept["name"])
    return json_response({"restored": path.name, "schema_version": version,
                          "events_stored": events, "previous_data": kept["name"]})  # fmt: skip


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
