"""Retention benchmark: 10M events, 9M of them rolled up and purged, ingest going on.

Run: scripts/bench retention   (or: PYTHONPATH=.:addon python benchmarks/bench_retention.py)
Options: --events N to scale down for a quick look (default 10 000 000).

1. Fill a fresh store fast, straight through the store's own ingest code
   (Ingestor.ingest via Store.write, 20k-event transactions, no HTTP): realistic
   enriched events from bench_store's Home, 90% spread over the 300 days before the
   raw retention limit (30 days) and 10% inside it.
2. Run the retention job (default policy: raw 30 d, hourly 365 d, daily forever) in
   process, as the scheduler does: build every pending hourly and daily rollup, delete
   the 9M expired raw events in small adaptive transactions, incremental vacuum.
3. Meanwhile a producer commits a 100-event batch every 50 ms through the same writer;
   each batch's latency (submit to committed) is recorded. Reported: the job's wall time
   and p50/p99/max of that ingest latency, plus the same latency measured for a few
   seconds before the job as a baseline.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from functools import partial
import itertools
import os
from pathlib import Path
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import time
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "addon"))
sys.path.insert(0, str(REPO / "benchmarks"))

from homeiq_addon.ingest.service import Ingestor  # noqa: E402
from homeiq_addon.retention import job  # noqa: E402
from homeiq_addon.retention.policies import Policy, PolicySet  # noqa: E402
from homeiq_addon.store.db import Store  # noqa: E402

WORK = REPO / "benchmarks" / ".work" / "retention"
RESULTS = REPO / "benchmarks" / "results" / "retention.json"
DAY_US = 86_400_000_000
GOAL_P99_MS = 100.0
FILL_BATCH = 20_000


class Home:
    """1500 entities (60% numeric sensors), Zipf-like rates; cheap to generate in bulk."""

    def __init__(self, n: int = 1500, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.templates: list[dict[str, Any]] = []
        weights = []
        for i in range(n):
            domain = "sensor" if i % 5 < 3 else ("binary_sensor", "light")[i % 2]
            area = ("Kitchen", "Living Room", "Bedroom", "Office", "Hall")[i % 5]
            tmpl: dict[str, Any] = {
                "event_type": "state_changed",
                "origin": "LOCAL",
                "entity_id": f"{domain}.{area.lower().replace(' ', '_')}_{i}",
                "domain": domain,
                "area": area,
                "area_id": area.lower().replace(" ", "_"),
                "friendly_name": f"{area} {i}",
            }
            if domain == "sensor":
                tmpl.update(
                    unit="W", device_class="power", attributes={"state_class": "measurement"}
                )
            self.templates.append(tmpl)
            weights.append(1 / (1 + i % 50) ** 0.8)
        self.cum = list(itertools.accumulate(weights))
        self.n = 0

    def batch(self, count: int, t0: int, step: int, tag: str) -> dict[str, Any]:
        picks = self.rng.choices(self.templates, cum_weights=self.cum, k=count)
        events = []
        for i, tmpl in enumerate(picks):
            self.n += 1
            ev = dict(tmpl)
            ev["time_fired"] = datetime.fromtimestamp((t0 + i * step) / 1e6, UTC).isoformat()
            ev["context_id"] = f"01J{self.n:023d}"
            if tmpl["domain"] == "sensor":
                value = float(self.n % 3000) / 10
                ev["state"], ev["numeric_value"] = str(value), value
            else:
                ev["state"] = "on" if self.n % 3 else "off"
            events.append(ev)
        return {
            "batch_id": tag,
            "source": {"instance_id": "bench", "integration_version": "0"},
            "events": events,
        }


def make_batch(home: Home, n: int, t0: int, step: int, tag: str) -> dict[str, Any]:
    return home.batch(n, t0, step, tag)


def time_steps(store: Store, steps: dict[str, list[float]]) -> None:
    """Record how long each kind of writer job takes (queue wait included)."""
    write = store.write

    async def timed(fn: Any, **kw: Any) -> Any:
        name = getattr(getattr(fn, "func", fn), "__qualname__", "?").split(".")[0]
        started = time.perf_counter()
        try:
            return await write(fn, **kw)
        finally:
            steps.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    store.write = timed  # type: ignore[method-assign]


async def fill(store: Store, ingestor: Ingestor, home: Home, total: int, now_us: int) -> float:
    """Write ``total`` events; returns events/s. 90% old (to purge), 10% recent."""
    old = total * 9 // 10
    spans = [
        (old, now_us - 330 * DAY_US, now_us - 30 * DAY_US - 3_600_000_000),
        (total - old, now_us - 29 * DAY_US, now_us - 3_600_000_000),
    ]
    started = time.perf_counter()
    written = 0
    for count, start, end in spans:
        step = (end - start) // count
        for first in range(0, count, FILL_BATCH):
            n = min(FILL_BATCH, count - first)
            batch = make_batch(home, n, start + first * step, step, f"fill-{start}-{first}")
            await store.write(partial(ingestor.ingest, body=orjson.dumps(batch)))
            written += n
            if written % 1_000_000 < FILL_BATCH:
                rate = written / (time.perf_counter() - started)
                print(f"  filled {written:,} events ({rate:,.0f}/s)", flush=True)
    return written / (time.perf_counter() - started)


async def producer(
    store: Store, ingestor: Ingestor, home: Home, stop: asyncio.Event, latencies: list[float]
) -> None:
    """A steady trickle of live batches; records submit-to-commit latency in ms."""
    n = 0
    while not stop.is_set():
        now_us = time.time_ns() // 1000
        batch = make_batch(home, 100, now_us, 1000, f"live-{n}-{now_us}")
        started = time.perf_counter()
        await store.write(partial(ingestor.ingest, body=orjson.dumps(batch)))
        latencies.append((time.perf_counter() - started) * 1000)
        n += 1
        await asyncio.sleep(0.05)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


async def main(total: int) -> dict[str, Any]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    store = await Store.open(WORK)
    ingestor = Ingestor(store)
    home = Home()
    now_us = time.time_ns() // 1000
    print(f"filling {total:,} events ...", flush=True)
    fill_rate = await fill(store, ingestor, home, total, now_us)
    size_before = store.path.stat().st_size

    baseline: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(producer(store, ingestor, home, stop, baseline))
    await asyncio.sleep(5)
    stop.set()
    await task

    default = Policy("default", "default", None, 30.0, 365.0, None)
    steps: dict[str, list[float]] = {}
    time_steps(store, steps)
    during: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(producer(store, ingestor, home, stop, during))
    print("running retention ...", flush=True)
    started = time.perf_counter()
    report = await job.run(store, PolicySet(default, []), now_us=now_us, dry_run=False)
    seconds = time.perf_counter() - started
    stop.set()
    await task
    remaining = await store.read(
        lambda c: c.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    )
    rollups = await store.read(
        lambda c: [
            c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("rollups_hourly", "rollups_daily")
        ]
    )
    size_after = store.path.stat().st_size
    await store.close()
    counts = report.to_json(PolicySet(default, []))
    return {
        "retention_seconds_10m": round(seconds, 1),
        "p99_ingest_latency_during_retention_ms": _pct(during, 0.99),
        "goal_p99_ms": GOAL_P99_MS,
        "events_total": total,
        "events_purged": counts["totals"]["raw_events"],
        "events_remaining": remaining,
        "hours_rolled_up": report.hours_built,
        "days_rolled_up": report.days_built,
        "hourly_rollup_rows": rollups[0],
        "daily_rollup_rows": rollups[1],
        "purged_per_second": round(counts["totals"]["raw_events"] / seconds),
        "ingest_latency_during_retention_ms": {
            "batches": len(during),
            "batch_events": 100,
            "p50": _pct(during, 0.5),
            "p99": _pct(during, 0.99),
            "max": round(max(during), 2),
            "mean": round(statistics.fmean(during), 2),
        },
        "ingest_latency_baseline_ms": {
            "batches": len(baseline),
            "p50": _pct(baseline, 0.5),
            "p99": _pct(baseline, 0.99),
        },
        "writer_steps_ms": {
            k: {"n": len(v), "p99": _pct(v, 0.99), "max": round(max(v), 1)}
            for k, v in steps.items()
        },
        "fill_events_per_second": round(fill_rate),
        "db_bytes_before": size_before,
        "db_bytes_after": size_after,
        "freed_bytes_incremental_vacuum": report.freed_bytes,
        "machine": _machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--no-write", action="store_true", help="print only, keep results")
    args = parser.parse_args()
    figures = asyncio.run(main(args.events))
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
    shutil.rmtree(WORK, ignore_errors=True)
