"""The Supervisor-backup snapshot is consistent during writes and comes back on restore,
once checked like any backup."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import shutil
import sqlite3
import subprocess
import sys
import threading

import aiohttp
import pytest

from homeiq_addon.backups.snapshot import promote_snapshot, snapshot_path, take_snapshot
from homeiq_addon.store.migrations import migrate
from tests.addon.retention_data import T0, Api, event
from tests.conftest import AddonProcess

ROOT = Path(__file__).parents[2]


def _live_db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "homeiq.db", check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER, payload TEXT)")
    conn.commit()
    return conn


def test_snapshot_while_writing_holds_whole_transactions(tmp_path: Path) -> None:
    conn = _live_db(tmp_path)
    stop = threading.Event()

    def write() -> None:
        batch = 0
        while not stop.is_set() and batch < 2000:
            batch += 1
            with conn:
                conn.executemany(
                    "INSERT INTO t (batch, payload) VALUES (?, ?)",
                    [(batch, "x" * 200)] * 50,
                )

    writer = threading.Thread(target=write)
    writer.start()
    try:
        snapshots = [take_snapshot(tmp_path) for _ in range(3)]
    finally:
        stop.set()
        writer.join()
    conn.close()

    copy = sqlite3.connect(snapshots[-1])
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Every batch in the copy is complete: the snapshot never splits a transaction.
    partial = copy.execute(
        "SELECT batch, COUNT(*) FROM t GROUP BY batch HAVING COUNT(*) != 50"
    ).fetchall()
    assert partial == []
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy.close()


def test_promote_restores_only_when_the_live_database_is_missing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "homeiq.db", autocommit=True)
    conn.execute("PRAGMA journal_mode=WAL")
    migrate(conn)  # a HomeIQ database: promoting checks that
    conn.execute("INSERT INTO retention_meta VALUES ('t', 'kept')")
    conn.close()
    take_snapshot(tmp_path)

    assert promote_snapshot(tmp_path) is False  # live database present: untouched

    # What a Supervisor restore leaves: the snapshot, no live files, maybe a stray WAL.
    (tmp_path / "homeiq.db").unlink()
    (tmp_path / "homeiq.db-wal").write_bytes(b"stale")
    assert promote_snapshot(tmp_path) is True
    assert not (tmp_path / "homeiq.db-wal").exists()
    restored = sqlite3.connect(tmp_path / "homeiq.db")
    assert restored.execute("SELECT value FROM retention_meta").fetchall() == [("kept",)]
    restored.close()


def test_nothing_to_promote_without_a_snapshot(tmp_path: Path) -> None:
    assert promote_snapshot(tmp_path) is False
    assert not (tmp_path / "homeiq.db").exists()


def test_snapshot_command_reports_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no database"):
        take_snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "homeiq_addon.backups.snapshot", "--data-dir", str(tmp_path)],
        cwd=ROOT / "addon",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "no database" in result.stderr
    assert not snapshot_path(tmp_path).exists()


# --- after a Supervisor restore, on the real add-on ----------------------------------


async def _supervisor_restore(server: AddonProcess, change: str | None) -> AddonProcess:
    """The data dir a Supervisor restore leaves: a snapshot of ``server``'s data, no
    live database; the snapshot altered by ``change``. Returns the add-on for it, stopped."""
    async with aiohttp.ClientSession() as session:
        api = Api(server, session)
        await api.ingest(
            [event(T0 + timedelta(minutes=k), "sensor.kept", str(k)) for k in range(10)]
        )
    server.stop()
    data_dir = server.data_dir.parent / "restored"
    take_snapshot(server.data_dir)
    snapshot_path(data_dir).parent.mkdir(parents=True)
    shutil.copyfile(snapshot_path(server.data_dir), snapshot_path(data_dir))
    shutil.copyfile(server.data_dir / "token", data_dir / "token")
    if change is not None:
        conn = sqlite3.connect(snapshot_path(data_dir), autocommit=True)
        conn.execute(change)
        conn.close()
    return AddonProcess(data_dir)


async def test_the_snapshot_of_a_supervisor_backup_is_restored(
    addon_server: AddonProcess,
) -> None:
    restored = await _supervisor_restore(addon_server, None)
    restored.start()
    try:
        assert restored.row_count() == 10
        assert "Restored the database from the Supervisor backup snapshot" in restored.log()
    finally:
        restored.stop()


async def test_an_altered_snapshot_is_kept_aside_and_the_add_on_starts_empty(
    addon_server: AddonProcess,
) -> None:
    restored = await _supervisor_restore(
        addon_server, "CREATE TRIGGER x AFTER INSERT ON events BEGIN DELETE FROM events; END"
    )
    restored.start()
    try:
        log = restored.log()
        assert "The database in the Supervisor backup was not restored: homeiq.db: " in log
        assert "unexpected trigger x on events" in log
        assert not snapshot_path(restored.data_dir).exists()
        (rejected,) = snapshot_path(restored.data_dir).parent.glob("homeiq-rejected-*.db")
        assert rejected.name in log
        # The file is kept as it was, for whoever wants to look into it.
        conn = sqlite3.connect(f"file:{rejected}?mode=ro", uri=True)
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (10,)
        conn.close()
        assert restored.row_count() == 0
        async with aiohttp.ClientSession() as session:
            await Api(restored, session).ingest([event(T0, "sensor.new", "1")])
        assert restored.row_count() == 1  # stored, not deleted by the trigger
    finally:
        restored.stop()


async def test_a_snapshot_of_a_newer_add_on_stops_the_start_and_stays(
    addon_server: AddonProcess,
) -> None:
    restored = await _supervisor_restore(addon_server, "PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="add-on exited with 2"):
        restored.start()
    assert "the Supervisor backup's database was not restored" in restored.log()
    assert "schema version 99 is newer than this add-on's" in restored.log()
    assert snapshot_path(restored.data_dir).exists()
    assert not (restored.data_dir / "homeiq.db").exists()
