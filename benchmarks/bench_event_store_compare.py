"""The store of one commit against this checkout's: bytes per event and query latency.

Run: PYTHONPATH=.:addon python benchmarks/bench_event_store_compare.py [--base COMMIT]
     [--events N] [--rounds R]

Both add-ons store the same realistic events (bench_store.py's home, ``--events``
over the last day, by probe_event_bytes.py); the base's add-on comes from ``git
archive`` of ``--base`` (default: where this branch left main). Both then run side by
side, and every query is asked of one and then of the other, the order swapped each
round, so both see the same machine load: stats of 24 h, the raw history of the
chattiest entity over the day, the newest page of events, a page of events in an hour
in the middle, and an export of that hour; reads by entity of the chattiest and of the
rarest entity (all of the day's history, the newest page, the last event before the
middle hour); once both add-ons are idle (their first start rolls the hours up).
Writes benchmarks/results/event_store_compare.json with the medians and the ratios
(this checkout over the base; below 1 is faster).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
import os
from pathlib import Path
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_store import Addon, machine  # noqa: E402
from probe_event_bytes import table_bytes  # noqa: E402

WORK = REPO / "benchmarks" / ".work" / "event_store_compare"
RESULTS = REPO / "benchmarks" / "results" / "event_store_compare.json"
_US_PER_HOUR = 3_600_000_000


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+", "%2B")


def base_addon(commit: str) -> Path:
    """The add-on's source at ``commit``, unpacked under WORK."""
    target = WORK / f"base-{commit[:12]}"
    if not (target / "addon" / "homeiq_addon").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "addon"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "addon"


def build(addon: Path, data_dir: Path, events: int) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "probe_event_bytes.py"),
         "--events", str(events), "--addon", str(addon), "--keep", str(data_dir),
         "--sample", "1000"],
        check=True, env={**os.environ, "PYTHONPATH": f"{REPO}:{addon}"},
    )  # fmt: skip


def _chattiest(db: Path, rarest: bool = False) -> str:
    """The entity with the most events (``rarest``: the fewest)."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT n.entity_id FROM stat_hour_key k JOIN entities n ON n.id = k.entity_ref"
            f" GROUP BY k.entity_ref ORDER BY SUM(k.n) {'' if rarest else 'DESC'} LIMIT 1"
        ).fetchone()
        return str(row[0])
    finally:
        conn.close()


def _count(db: Path, entity_id: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                "SELECT SUM(k.n) FROM stat_hour_key k JOIN entities n ON n.id = k.entity_ref"
                " WHERE n.entity_id = ?",
                (entity_id,),
            ).fetchone()[0]
        )
    finally:
        conn.close()


def _span(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        # The first and last event by id: the events are stored in time order.
        first = conn.execute("SELECT time_fired FROM events ORDER BY id LIMIT 1").fetchone()[0]
        last = conn.execute("SELECT time_fired FROM events ORDER BY id DESC LIMIT 1").fetchone()
        return int(first), int(last[0])
    finally:
        conn.close()


type Query = tuple[str, str, Any]  # method, path, JSON body


async def _timed(session: aiohttp.ClientSession, addon: Addon, query: Query) -> float:
    method, path, body = query
    start = time.perf_counter()
    async with session.request(method, addon.url + path, headers=addon.headers, json=body) as resp:
        await resp.read()
        assert resp.status in (200, 201), (path, resp.status)
    return (time.perf_counter() - start) * 1000


async def compare(base: Addon, this: Addon, queries: dict[str, Query],
                  rounds: int) -> dict[str, dict[str, float]]:  # fmt: skip
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as session:
        for name, query in queries.items():
            times: dict[str, list[float]] = {"base": [], "this": []}
            for _ in range(2):  # warm both page caches
                await _timed(session, base, query)
                await _timed(session, this, query)
            for i in range(rounds):
                order = [("base", base), ("this", this)]
                for label, addon in order if i % 2 else reversed(order):
                    times[label].append(await _timed(session, addon, query))
            b, t = statistics.median(times["base"]), statistics.median(times["this"])
            out[name] = {"base_p50_ms": round(b, 2), "this_p50_ms": round(t, 2),
                         "ratio": round(t / b, 3)}  # fmt: skip
            print(f"{name:28} base {b:8.2f} ms   this {t:8.2f} ms   ratio {t / b:.3f}")
    return out


async def _idle(addon: Addon, timeout_s: float = 600) -> None:
    """Until the add-on used under 2 % of a CPU for 3 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = addon.cpu_s()
        await asyncio.sleep(3)
        if addon.cpu_s() - before < 0.06:
            return
    raise RuntimeError("the add-on never went idle")


async def measure(
    dirs: dict[str, Path], sources: dict[str, Path], queries: dict[str, Query], rounds: int
) -> dict[str, dict[str, float]]:
    base, this = Addon(dirs["base"], sources["base"]), Addon(dirs["this"], sources["this"])
    try:
        await base.wait()
        await this.wait()
        # The first start of an add-on on a store rolls its hours up: measure after.
        await _idle(base)
        await _idle(this)
        return await compare(base, this, queries, rounds)
    finally:
        base.stop()
        this.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=None, help="commit (default: merge-base with main)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--reuse", action="store_true", help="keep the stores of a last run")
    args = parser.parse_args()
    commit = args.base or subprocess.run(
        ["git", "-C", str(REPO), "merge-base", "HEAD", "main"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    results: dict[str, Any] = {"machine": machine(), "date": datetime.now(UTC).isoformat(),
                               "base_commit": commit, "events": args.events,
                               # Reused stores hold the rollups of the runs before.
                               "stores_reused": args.reuse}  # fmt: skip
    dirs = {"base": WORK / "base-store", "this": WORK / "this-store"}
    sources = {"base": base_addon(commit), "this": REPO / "addon"}
    for label in ("base", "this"):
        if not (args.reuse and (dirs[label] / "homeiq.db").exists()):
            build(sources[label], dirs[label], args.events)
        db = dirs[label] / "homeiq.db"
        results[f"{label}_db_bytes_per_event"] = round(db.stat().st_size / args.events, 1)
        results[f"{label}_bytes_per_event_by_table"] = {
            name: figures["per_event"]
            for name, figures in table_bytes(db).items()
            if figures["per_event"] >= 0.05
        }
    entity = _chattiest(dirs["this"] / "homeiq.db")
    rare = _chattiest(dirs["this"] / "homeiq.db", rarest=True)
    results["rare_entity_events"] = _count(dirs["this"] / "homeiq.db", rare)
    results["chatty_entity_events"] = _count(dirs["this"] / "homeiq.db", entity)
    first, last = _span(dirs["this"] / "homeiq.db")
    hour = first + (last - first) // 2
    queries: dict[str, Query] = {
        "stats_24h": ("GET", "/api/v1/stats?period=24h", None),
        "history_entity_day": (
            "GET", f"/api/v1/history/{entity}?start={_iso(first)}&end={_iso(last + 1)}", None),
        "events_newest_page": ("GET", "/api/v1/events?limit=100", None),
        "events_hour_page": (
            "GET", f"/api/v1/events?limit=100&start={_iso(hour)}&end={_iso(hour + _US_PER_HOUR)}",
            None),
        "export_hour": ("POST", "/api/v1/export", {
            "start": datetime.fromtimestamp(hour / 1e6, UTC).isoformat(),
            "end": datetime.fromtimestamp((hour + _US_PER_HOUR) / 1e6, UTC).isoformat(),
            "format": "jsonl"}),
        # Reads by entity: a chatty one is in every block of ids, a rare one (a few dozen
        # events in the whole history) in a few.
        "history_entity_day_all": (
            "GET", f"/api/v1/history/{entity}?start={_iso(first)}&end={_iso(last + 1)}"
                   "&limit=10000", None),
        "chatty_entity_newest_page": ("GET", f"/api/v1/events?entity_id={entity}&limit=100",
                                      None),
        "rare_entity_newest_page": ("GET", f"/api/v1/events?entity_id={rare}&limit=100", None),
        "rare_entity_last_before": (
            "GET", f"/api/v1/events?entity_id={rare}&limit=1&end={_iso(hour)}", None),
        "rare_entity_history_day": (
            "GET", f"/api/v1/history/{rare}?start={_iso(first)}&end={_iso(last + 1)}", None),
    }  # fmt: skip
    results["queries"] = asyncio.run(measure(dirs, sources, queries, args.rounds))
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"base {results['base_db_bytes_per_event']} B/event, "
          f"this {results['this_db_bytes_per_event']} B/event -> {RESULTS}")  # fmt: skip


if __name__ == "__main__":
    main()
