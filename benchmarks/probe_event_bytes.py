"""Where a stored event's bytes go: the store of bench_store.py's realistic events,
table by table (SQLite's dbstat) and column by column in ``events``.

Run: PYTHONPATH=.:addon python benchmarks/probe_event_bytes.py [--events N] [--addon DIR]
``--addon`` loads the add-on from another checkout (a worktree of an older commit), so
the same events can be stored by two versions of the schema.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
import importlib
from pathlib import Path
import shutil
import sqlite3
import sys
import time
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / ".work" / "event_bytes"


def _int_size(v: int) -> int:
    """Bytes of an integer in a SQLite record (serial types 1-6, 8 and 9)."""
    if v in (0, 1):
        return 0
    for size, bound in ((1, 1 << 7), (2, 1 << 15), (3, 1 << 23), (4, 1 << 31), (6, 1 << 47)):
        if -bound <= v < bound:
            return size
    return 8


def column_bytes(conn: sqlite3.Connection, table: str, sample: int) -> dict[str, float]:
    """Average payload bytes of each column over ``sample`` rows (header bytes aside)."""
    # table_xinfo lists the generated columns too (SELECT * returns them); a virtual one
    # (hidden = 2) takes no byte.
    info = conn.execute(f"PRAGMA table_xinfo({table})").fetchall()
    real_cols = {r[1] for r in info if r[2] == "REAL"}
    columns = [r[1] for r in info]
    virtual = {r[1] for r in info if r[6] == 2}
    totals: dict[str, float] = defaultdict(float)
    n = 0
    for row in conn.execute(f"SELECT * FROM {table} LIMIT ?", (sample,)):
        n += 1
        for name, value in zip(columns, row, strict=True):
            if value is None or name in virtual:
                continue
            if isinstance(value, int):
                size = _int_size(value)
            elif isinstance(value, float):
                # A REAL column stores a whole-number value as an integer.
                whole = name in real_cols and value.is_integer() and abs(value) < 2**47
                size = _int_size(int(value)) if whole else 8
            elif isinstance(value, str):
                size = len(value.encode())
            else:
                size = len(value)
            totals[name] += size
    return {k: round(v / max(n, 1), 2) for k, v in totals.items()}


def table_bytes(path: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        rows = conn.execute(
            "SELECT name, SUM(pgsize), SUM(payload), SUM(unused), COUNT(*)"
            " FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        out = {
            name: {
                "bytes": size,
                "per_event": round(size / events, 2),
                "pages": pages,
                "payload_per_event": round(payload / events, 2),
                "unused_share": round(unused / size, 3),
            }
            for name, size, payload, unused, pages in rows
        }
        out["(free pages)"] = {"bytes": free * page, "per_event": round(free * page / events, 2)}
        return out
    finally:
        conn.close()


def build(events: int, addon: Path, data_dir: Path) -> float:
    """Store ``events`` of bench_store's home in ``data_dir``; seconds it took."""
    sys.path.insert(0, str(addon))
    importlib.import_module("homeiq_addon")  # before bench_store puts this repo's first
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_store import Home, populate

    from homeiq_addon.store.db import Store

    if data_dir.exists():
        shutil.rmtree(data_dir)
    store = Store.open_sync(data_dir)
    # As bench_store: over the last day, so that the stats of 24 h count them all.
    now_us = time.time_ns() // 1000
    start = time.perf_counter()
    populate(store, Home(), events, now_us - 23 * 3_600_000_000, now_us - 600_000_000, 0, events)
    store.close_sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--addon", type=Path, default=REPO / "addon")
    parser.add_argument("--sample", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="build here instead, and keep it")
    args = parser.parse_args()
    data_dir = args.keep or WORK
    seconds = build(args.events, args.addon, data_dir)
    db = data_dir / "homeiq.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    print(f"{args.events:,} events in {seconds:.1f} s: {size / args.events:.1f} B/event")
    for name, figures in table_bytes(db).items():
        print(f"  {name:28} {figures}")
    conn = sqlite3.connect(db)
    print("  events columns (payload bytes per row):", column_bytes(conn, "events", args.sample))
    conn.close()


if __name__ == "__main__":
    main()
