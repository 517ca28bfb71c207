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

from ..config import Config
from ..errors import BadRequest, InsufficientStorage, NotFound
from ..store.connection import connect
from ..store.db import Store
from ..store.migrations import MIGRATIONS, migrate
from ..store.schema_check import InvalidDatabase, check_database
from ..times import next_daily

_LOGGER = logging.getLogger(__name__)
# Where a backup is copied to be checked and migrated before it replaces the live data.
STAGED: Final = ".restoring"
_INCREMENTAL: Final = 2  # PRAGMA auto_vacuum, as the store sets it
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.db$")


class BackupService:
    """The backups of one store, one operation at a time (create, restore, the daily one)."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.data_dir = config.data_dir
        self._lock = asyncio.Lock()

    def path_of(self, name: str) -> Path:
        """The backup file called ``name``; BadRequest or NotFound when there is none."""
        if not _NAME_RE.match(name):
            raise BadRequest(f"name: {name!r} is not a backup file name")
        path = backup_dir(self.data_dir) / name
        if not path.is_file():
            raise NotFound(f"no backup named {name!r}")
        return path

    async def existing(self) -> list[dict[str, Any]]:
        """The backups, newest first."""
        return await asyncio.to_thread(list_backups, self.data_dir)

    async def create(self) -> dict[str, Any]:
        async with self._lock:
            return await asyncio.to_thread(create_backup, self.store, self.data_dir)

    async def delete(self, name: str) -> str:
        path = self.path_of(name)
        path.unlink(missing_ok=True)
        return path.name

    async def restore(self, name: str) -> dict[str, Any]:
        """Check the backup on a copy, keep the live data as a backup, then swap it in.

        Raises InvalidBackup (the file) or InsufficientStorage (no room for the copy or
        the kept data); in both cases nothing was changed.
        """
        store = self.store
        path = self.path_of(name)
        staged = backup_dir(self.data_dir) / STAGED
        async with self._lock:
            try:
                page_size = await store.read(lambda c: c.execute("PRAGMA page_size").fetchone()[0])
                try:
                    version = await asyncio.to_thread(stage, path, staged, page_size)
                except (OSError, sqlite3.Error) as err:
                    raise InsufficientStorage(
                        f"could not prepare {path.name} for the restore ({err});"
                        " nothing was restored",
                        code="restore_failed",
                    ) from err
                try:
                    kept = await asyncio.to_thread(
                        create_backup, store, self.data_dir, "before-restore"
                    )
                except (OSError, sqlite3.Error) as err:
                    raise InsufficientStorage(
                        f"could not keep a copy of the current data first ({err});"
                        " nothing was restored",
                        code="backup_failed",
                    ) from err
                await store.write(lambda c: restore_into(c, staged, store), transaction=False)
            finally:
                await asyncio.to_thread(discard, staged)
        events = await store.read(
            lambda c: c.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
        )
        _LOGGER.info("Restored backup %s; the data it replaced is in %s", path.name, kept["name"])
        return {"restored": path.name, "schema_version": len(MIGRATIONS),
                "backup_schema_version": version, "events_stored": events,
                "previous_data": kept["name"]}  # fmt: skip

    async def daily(self) -> None:
        """A backup every day at backup_schedule, keeping the newest backup_keep (0 = off)."""
        config = self.config
        if config.backup_keep <= 0:
            return
        while True:
            now = datetime.now(UTC).astimezone()
            due = next_daily(config.backup_schedule, now)
            if due is None:
                return
            await asyncio.sleep((due - now).total_seconds())
            try:
                async with self._lock:
                    await asyncio.to_thread(create_backup, self.store, self.data_dir)
                    await asyncio.to_thread(prune, self.data_dir, config.backup_keep)
            except Exception:
                _LOGGER.exception("Scheduled backup failed")


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


def discard(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def stage(path: Path, staged: Path, page_size: int) -> int:
    """Copy a backup, check the copy and bring it to this add-on's schema (blocking).

    Returns the schema version the backup had. Raises InvalidDatabase or SchemaTooNew
    (nothing was changed) and leaves ``staged`` ready to be copied into the live database:
    the live database is never migrated or rebuilt in place. ``page_size`` is the live
    database's: SQLite cannot copy a database of another page size into a WAL database.
    """
    discard(staged)
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


def restore_into(conn: sqlite3.Connection, staged: Path, store: Store) -> None:
    """Runs on the writer thread, outside any transaction: one step, all or nothing."""
    source = sqlite3.connect(f"file:{staged}?mode=ro", uri=True)
    store.content_replacing()
    try:
        source.backup(conn)
    finally:
        source.close()
        store.content_replaced(conn)


def prune(data_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups."""
    doomed = [b["name"] for b in list_backups(data_dir)[keep:]]
    for name in doomed:
        (backup_dir(data_dir) / name).unlink(missing_ok=True)
    return doomed
