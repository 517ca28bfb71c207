"""Retention benchmark: 10M events, 9M of them rolled up and purged, ingest going on.

Run: scripts/bench retention   (or: PYTHONPATH=.:addon python benchmarks/bench_retention.py)
Options: --events N to scale down for a quick look (default 10 000 000); --home
spread|realistic (default spread); --home both runs both, one after the other.

1. Fill a fresh store fast, straight through the store's own ingest code
   (Ingestor.ingest via Store.write, 20k-event transactions, no HTTP): enriched events
   as the integration sends them (a context id that is a ULID of the event's time, the
   old state, the last change and, for a change, the old state's duration to the µs),
   90% spread over the 300 days before the raw retention limit (30 days) and 10%
   inside it.
2. Run the retention job (default policy: raw 30 d, hourly 365 d, daily forever) in
   process, as the scheduler does: build every pending hourly and daily rollup, delete
   the 9M expired raw events in small adaptive transactions, incremental vacuum.
   The ``spread`` home puts about one event in each entity-hour (the worst case for
   rollups: one rollup row per event); the ``realistic`` home gets most events from a
   few chatty sensors and has many entities that change a few times a day.
3. Meanwhile a producer commits a LIVE_BATCH_EVENTS-event batch every LIVE_INTERVAL_S
   through the same writer (100 events/s: far above a busy home's few events/s, yet
   few enough that the file's size measures retention, not the producer); each batch's
   latency (submit to committed) is recorded. Reported: the job's wall time
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

from bench_store import _ulid  # noqa: E402

from homeiq_addon.contract import MAX_EVENTS  # noqa: E402
from homeiq_addon.ingest.outcomes import Accepted  # noqa: E402
from homeiq_addon.ingest.service import Ingestor  # noqa: E402
from homeiq_addon.retention import job  # noqa: E402
from homeiq_addon.retention.policies import Policy, PolicySet  # noqa: E402
from homeiq_addon.store import maintenance, rollup_rows  # noqa: E402
from homeiq_addon.store.db import Store  # noqa: E402

WORK = REPO / "benchmarks" / ".work" / "retention"
RESULTS = REPO / "benchmarks" / "results" / "retention.json"
DAY_US = 86_400_000_000
GOAL_P99_MS = 100.0
GOAL_RATIO = 0.35
GOAL_ROLLUP_BYTES = 40
FILL_BATCH = 20_000
# The live producer: 20 events every 0.2 s, 100 events/s. A busy home sustains a few
# events/s; at 2,000/s (the rate before) a long job added 40 % to the store.
LIVE_BATCH_EVENTS = 20
LIVE_INTERVAL_S = 0.2


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
        self.last: dict[str, tuple[str, int]] = {}  # each entity's state and its change

    def batch(self, count: int, t0: int, step: int, tag: str) -> dict[str, Any]:
        picks = self.rng.choices(self.templates, cum_weights=self.cum, k=count)
        events = []
        for i, tmpl in enumerate(picks):
            self.n += 1
            t_us = t0 + i * step
            ev = dict(tmpl)
            ev["time_fired"] = datetime.fromtimestamp(t_us / 1e6, UTC).isoformat()
            # As Home Assistant makes a state's context: a ULID of the time it is set.
            ev["context_id"] = _ulid(t_us // 1000, self.rng.getrandbits(80))
            ev["state"], value = self.state(tmpl)
            if value is not None:
                ev["numeric_value"] = value
            self.as_home_assistant_sends(ev, t_us)
            events.append(ev)
        return {
            "batch_id": tag,
            "source": {"instance_id": "bench", "integration_version": "0"},
            "events": events,
        }

    def state(self, tmpl: dict[str, Any]) -> tuple[str, float | None]:
        if tmpl["domain"] == "sensor":
            value = float(self.n % 3000) / 10
            return str(value), value
        return ("on" if self.n % 3 else "off"), None

    def as_home_assistant_sends(self, ev: dict[str, Any], t_us: int) -> None:
        """The old state, when the state last changed and, if this event changed it, how
        long the old state was held, in whole microseconds (custom_components/homeiq/wire.py)."""
        previous = self.last.get(ev["entity_id"])
        changed_us = t_us
        if previous is not None:
            old_state, old_changed_us = previous
            ev["old_state"] = old_state
            if old_state == ev["state"]:
                changed_us = old_changed_us
            else:
                ev["prev_state_seconds"] = round((t_us - old_changed_us) / 1e6, 6)
        ev["last_changed"] = datetime.fromtimestamp(changed_us / 1e6, UTC).isoformat()
        self.last[ev["entity_id"]] = (ev["state"], changed_us)


class RealisticHome(Home):
    """3000 entities: 30 chatty power/energy sensors take 80% of the events, 270 sensors
    report now and then, and 2700 entities (lights, switches, doors, motion, climate,
    media) change a few times a day, with states beyond on/off."""

    def __init__(self, seed: int = 7) -> None:
        super().__init__(n=3000, seed=seed)
        weights = []
        for i, tmpl in enumerate(self.templates):
            if i < 300:
                tmpl.update(
                    entity_id=f"sensor.power_{i}",
                    domain="sensor",
                    unit="W",
                    device_class="power",
                    attributes={"state_class": "measurement"},
                )
                weights.append(0.8 / 30 if i < 30 else 0.1 / 270)
            else:
                domain = ("light", "switch", "binary_sensor", "climate", "media_player")[i % 5]
                tmpl.update(entity_id=f"{domain}.thing_{i}", domain=domain)
                tmpl.pop("unit", None)
                tmpl.pop("device_class", None)
                tmpl.pop("attributes", None)
                weights.append(0.1 / 2700)
        self.cum = list(itertools.accumulate(weights))
        self.states = {
            "light": ("on", "off"), "switch": ("on", "off"), "binary_sensor": ("on", "off"),
            "climate": ("heat", "off", "heat_cool", "unavailable"),
            "media_player": ("playing", "paused", "idle", "off"),
        }  # fmt: skip

    def state(self, tmpl: dict[str, Any]) -> tuple[str, float | None]:
        if tmpl["domain"] != "sensor":
            options = self.states[tmpl["domain"]]
            return options[self.rng.randrange(len(options))], None
        text, value = super().state(tmpl)
        if tmpl["entity_id"] < "sensor.power_03" and value is not None:  # chatty: whole watts
            return str(round(value)), float(round(value))
        return text, value


HOMES = {"spread": Home, "realistic": RealisticHome}


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


def ingest_all(ingestor: Ingestor, bodies: list[bytes], conn: sqlite3.Connection) -> None:
    """Several batches (the contract takes up to MAX_EVENTS each) in one transaction."""
    for body in bodies:
        answer = ingestor.ingest(conn, body)
        if not isinstance(answer, Accepted):
            raise RuntimeError(f"a fill batch was refused: {answer}")  # noqa: TRY004


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
            bodies = [
                orjson.dumps(make_batch(home, min(MAX_EVENTS, n - i), start + (first + i) * step,
                                        step, f"fill-{start}-{first + i}"))
                for i in range(0, n, MAX_EVENTS)
            ]  # fmt: skip
            await store.write(partial(ingest_all, ingestor, bodies))
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
        batch = make_batch(home, LIVE_BATCH_EVENTS, now_us, 1000, f"live-{n}-{now_us}")
        started = time.perf_counter()
        await store.write(partial(ingestor.ingest, body=orjson.dumps(batch)))
        latencies.append((time.perf_counter() - started) * 1000)
        n += 1
        await asyncio.sleep(LIVE_INTERVAL_S)


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


# What each tier is made of (the dbstat names of its tables and indexes).
TIERS = {
    "raw": ("events", "events_by_entity", "entity_postings", "events_by_time", "event_blocks",
            "attributes", "attributes_by_hash", "strings", "sqlite_autoindex_strings_1",
            "stat_hour_key", "stat_minute"),
    "hourly": ("rollups_hourly", "rollups_hourly_hour"),
    "daily": ("rollups_daily", "rollups_daily_day"),
}  # fmt: skip


def bytes_by_table(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    finally:
        conn.close()


def tiers(by_table: dict[str, int]) -> dict[str, int]:
    found = {tier: sum(by_table.get(t, 0) for t in names) for tier, names in TIERS.items()}
    found["other"] = sum(by_table.values()) - sum(found.values())
    return found


def rollup_entry_counts(conn: sqlite3.Connection) -> list[int]:
    """Hourly and daily rollups stored (hourly rows hold a day of hours each)."""
    return [rollup_rows.tier_summary(conn, tier)[0] for tier in ("hourly", "daily")]


async def main(total: int, home_name: str = "spread") -> dict[str, Any]:
    # A folder per home and size: two runs may go on side by side.
    work = WORK.with_name(f"retention-{home_name}-{total}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = await Store.open(work)
    ingestor = Ingestor(store)
    home = HOMES[home_name]()
    now_us = time.time_ns() // 1000
    print(f"filling {total:,} events ...", flush=True)
    fill_rate = await fill(store, ingestor, home, total, now_us)
    # As the running add-on would have it: the newest events indexed, the stats'
    # bookkeeping of days long gone pruned (store/maintenance.py), the WAL copied back.
    await asyncio.wrap_future(store.index_now())
    await maintenance.prune(store)
    # The pages that pruning freed go back to the file system before the file is
    # measured. A home that built its history day by day reused them for the next days'
    # events; here months were loaded at once, and the bookkeeping of all those days
    # pruned at once (a fifth of the file at 1M events). Counted, they made "before"
    # that much bigger and the ratio that much smaller.
    await store.write(lambda c: c.execute("PRAGMA incremental_vacuum").fetchall(),
                      transaction=False)  # fmt: skip
    await store.write(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(),
                      transaction=False)  # fmt: skip
    size_before = store.path.stat().st_size
    tables_before = bytes_by_table(store.path)

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
    rollups = await store.read(rollup_entry_counts)
    rollup_entries = rollups
    await store.close()
    size_after = store.path.stat().st_size
    tables_after = bytes_by_table(store.path)
    tiers_after = tiers(tables_after)
    counts = report.to_json(PolicySet(default, []))
    return {
        "home": home_name,
        "file_after_over_before": round(size_after / size_before, 3),
        # The producer's live events stay: more the longer the job runs (a loaded
        # machine). Without them, counted at the bytes per event of the filled store:
        "live_events_during_retention": len(during) * LIVE_BATCH_EVENTS,
        "file_after_over_before_without_live_events": round(
            (size_after - len(during) * LIVE_BATCH_EVENTS * size_before / total) / size_before, 3
        ),
        "bytes_per_tier_before": tiers(tables_before),
        "bytes_per_tier_after": tiers_after,
        "bytes_per_hourly_rollup": round(tiers_after["hourly"] / max(1, rollup_entries[0]), 1),
        "bytes_per_daily_rollup": round(tiers_after["daily"] / max(1, rollup_entries[1]), 1),
        "bytes_by_table_after": dict(sorted(tables_after.items(), key=lambda kv: -kv[1])),
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
            "batch_events": LIVE_BATCH_EVENTS,
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


def save(figures: dict[str, Any]) -> None:
    """Keep one run per home and size in ``runs``; the top level summarises them."""
    try:
        results = orjson.loads(RESULTS.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        results = {}
    runs = results.get("runs", {})
    runs[f"{figures['home']}_{figures['events_total']}"] = figures
    summary = {
        "file_after_over_before": {k: r["file_after_over_before"] for k, r in runs.items()},
        "file_after_over_before_without_live_events": {
            k: r["file_after_over_before_without_live_events"] for k, r in runs.items()
        },
        "goal_file_after_over_before": GOAL_RATIO,
        "bytes_per_hourly_rollup": {k: r["bytes_per_hourly_rollup"] for k, r in runs.items()},
        "bytes_per_daily_rollup": {k: r["bytes_per_daily_rollup"] for k, r in runs.items()},
        "goal_bytes_per_rollup": GOAL_ROLLUP_BYTES,
        "p99_ingest_latency_during_retention_ms": {
            k: r["p99_ingest_latency_during_retention_ms"] for k, r in runs.items()
        },
        "goal_p99_ms": GOAL_P99_MS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    # "reference": figures of an earlier version, kept for comparison by hand.
    body = {**summary, "runs": dict(sorted(runs.items())), "reference": results.get("reference")}
    RESULTS.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--home", choices=[*HOMES, "both"], default="spread")
    parser.add_argument("--no-write", action="store_true", help="print only, keep results")
    parser.add_argument("--keep", action="store_true", help="keep the store for a look after")
    args = parser.parse_args()
    for home_name in list(HOMES) if args.home == "both" else [args.home]:
        figures = asyncio.run(main(args.events, home_name))
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        if not args.no_write:
            save(figures)
        if not args.keep:
            shutil.rmtree(
                WORK.with_name(f"retention-{home_name}-{args.events}"), ignore_errors=True
            )
