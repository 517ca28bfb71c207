"""A consistent copy of the live database for the Supervisor's own backups.

The Supervisor backs the add-on up hot, by copying /data. A file copy of a SQLite
database in WAL mode can catch a half-written page, so config.yaml excludes the live
files and runs this module first (`backup_pre`): SQLite's online backup writes a
consistent snapshot while ingest goes on. After the Supervisor restores such a backup
the live database is absent, and the service promotes the snapshot at start, once it
passed the same checks as a restore of the add-on's own backups.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
import logging
from pathlib import Path
import shutil
import sqlite3

from ..store.db import DB_NAME
from ..store.migrations import SchemaTooNew
from ..store.schema_check import InvalidDatabase, check_database

_LOGGER = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshot"


def snapshot_path(data_dir: Path) -> Path:
    """Where the Supervisor-backup snapshot lives."""
    return data_dir / SNAPSHOT_DIR / DB_NAME


def take_snapshot(data_dir: Path) -> Path:
    """Copy the live database to the snapshot path; replace the old snapshot atomically."""
    live = data_dir / DB_NAME
    if not live.exists():
        raise FileNotFoundError(f"no database at {live}")
    target = snapshot_path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    try:
        dest = sqlite3.connect(partial)
        try:
            # Page steps let the writer in between, so ingest is not held up.
            source.backup(dest, pages=4096)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
    finally:
        source.close()
    partial.replace(target)
    return target


def promote_snapshot(data_dir: Path) -> bool:
    """Make the snapshot the live database when a restore left only the snapshot.

    The snapshot is checked like any backup first (store/schema_check.py). One that fails
    is not promoted but moved aside, named in an error in the log, and the add-on starts
    with an empty database; one written by a newer add-on raises SchemaTooNew and stays
    where it is, for the upgraded add-on to promote.
    """
    live = data_dir / DB_NAME
    snapshot = snapshot_path(data_dir)
    if live.exists() or not snapshot.exists():
        return False
    try:
        check_database(snapshot)
    except SchemaTooNew as err:
        raise SchemaTooNew(f"the Supervisor backup's database was not restored: {err}") from err
    except InvalidDatabase as err:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        rejected = snapshot.with_name(f"homeiq-rejected-{stamp}.db")
        snapshot.replace(rejected)
        _LOGGER.error(
            "The database in the Supervisor backup was not restored: %s. It is kept as %s;"
            " the add-on starts with an empty database",
            err,
            rejected,
        )
        return False
    for suffix in ("-wal", "-shm"):
        # A WAL left from another database must not be replayed onto the snapshot.
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    partial = live.with_suffix(".promoting")
    shutil.copyfile(snapshot, partial)
    partial.replace(live)
    _LOGGER.info("Restored the database from the Supervisor backup snapshot")
    return True


def main() -> None:
    """Entry point of the backup_pre hook."""
    parser = argparse.ArgumentParser(prog="python -m homeiq_addon.backups.snapshot")
    parser.add_argument("--data-dir", type=Path, default=Path("/data"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    target = take_snapshot(args.data_dir)
    _LOGGER.info("Snapshot written to %s (%d bytes)", target, target.stat().st_size)


if __name__ == "__main__":
    main()
