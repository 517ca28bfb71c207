"""The Supervisor-backup snapshot is consistent during writes and comes back on restore."""

from __future__ import annotations

from pathlib import Path
import sqlite3
import subprocess
import sys
import threading

import pytest

from homeiq_addon.snapshot import promote_snapshot, snapshot_path, take_snapshot

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
    conn = _live_db(tmp_path)
    with conn:
        conn.execute("INSERT INTO t (batch, payload) VALUES (1, 'kept')")
    conn.close()
    take_snapshot(tmp_path)

    assert promote_snapshot(tmp_path) is False  # live database present: untouched

    # What a Supervisor restore leaves: the snapshot, no live files, maybe a stray WAL.
    (tmp_path / "homeiq.db").unlink()
    (tmp_path / "homeiq.db-wal").write_bytes(b"stale")
    assert promote_snapshot(tmp_path) is True
    assert not (tmp_path / "homeiq.db-wal").exists()
    restored = sqlite3.connect(tmp_path / "homeiq.db")
    assert restored.execute("SELECT payload FROM t").fetchall() == [("kept",)]
    restored.close()


def test_nothing_to_promote_without_a_snapshot(tmp_path: Path) -> None:
    assert promote_snapshot(tmp_path) is False
    assert not (tmp_path / "homeiq.db").exists()


def test_snapshot_command_reports_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no database"):
        take_snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "homeiq_addon.snapshot", "--data-dir", str(tmp_path)],
        cwd=ROOT / "addon",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "no database" in result.stderr
    assert not snapshot_path(tmp_path).exists()
