"""Mirror benchmark: points/s into one VictoriaMetrics, lag under a steady ingest, disk.

Run: scripts/bench influx   (or: PYTHONPATH=.:addon python benchmarks/bench_influx.py)
Options: --events N (the stored history of phase 1, default 200,000), --seconds S (phase
2, default 60), --rate R (phase 2's events/s, default 5,000).

The real add-on process (``python -m homeiq_addon``, from HOMEIQ_ADDON_PYTHON when set)
with one mirror target: Debian's victoria-metrics on a free loopback port, started as
tests/mirror/engines.py starts it (``-dedup.minScrapeInterval=1ms``, retention 100 y).

1. ``mirror_points_per_s``: a full outbox drained by the live cursor (not a backfill,
   which is throttled on purpose). The target is configured from the start but its
   engine is down while N events are ingested over HTTP; then the engine starts. Timed
   from the first acknowledged chunk the add-on reports (``points_written`` grows) until
   its health says the target's lag is 0 events, then checked against the engine's own
   count (``homeiq_events`` + ``homeiq_states_active`` samples: one per point). Beside it
   ``live_points_per_s``: N more events ingested with the engine up, the mirror running
   from the start (one request at a time, bodies encoded beforehand), timed from the
   first ingest request to lag 0 — ingest and mirror sharing the two cores.
2. ``lag_s_at_5k_events_per_s``: 5,000 events/s over HTTP (ten batches a second, each
   event at the wall-clock time it is sent) for 60 s; a thread reads the target's
   ``lag_seconds`` (now minus the time of the oldest event not yet acknowledged) from
   /api/v1/health once a second: median and max.
3. Disk: ``du`` of the engine's data dir after /internal/force_flush and force_merge,
   per point written; ``du`` of the add-on's data dir after a clean stop, per event.
4. Where the time goes (in process, on a copy of the add-on's database, after the runs):
   reading the outbox (SQL and JSON), building lines, and the HTTP write through the
   add-on's own ``TargetWriter`` into the same engine.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
import os
from pathlib import Path
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from typing import Any
import uuid

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "addon")]

from bench_store import machine as store_machine  # noqa: E402

from homeiq_addon.mirror import outbox  # noqa: E402
from homeiq_addon.mirror.points import event_lines  # noqa: E402
from homeiq_addon.mirror.service import LIVE_CHUNK  # noqa: E402
from homeiq_addon.mirror.writer import Target, TargetWriter  # noqa: E402
from tests.mirror.addon import MirroringAddon, vm_target  # noqa: E402
from tests.mirror.engines import VictoriaMetrics, http, wait_until  # noqa: E402

WORK = REPO / "benchmarks" / ".work" / "influx"
RESULTS = REPO / "benchmarks" / "results" / "influx.json"
GOALS = {"mirror_points_per_s": 50_000, "lag_s_at_5k_events_per_s": 5.0}
ENTITIES = 500
CHUNK = 5000  # events per ingest request in phase 1


def machine() -> dict[str, Any]:
    """bench_store's description of the machine, and the engine's version."""
    vm = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return {**store_machine(), "victoria_metrics": vm}


class Home:
    """State changes of ``ENTITIES`` entities as an integration sends them: 4 in 5 numeric
    sensors drifting in small random steps, the rest lights switching on and off; times
    ``step_us`` apart on average, irregularly (regular data would flatter the engine's
    compression)."""

    def __init__(self, seed: int = 14) -> None:
        self.rng = random.Random(seed)
        self.values = [20.0 + self.rng.uniform(-3, 3) for _ in range(ENTITIES)]
        self.n = 0

    def event(self, t_us: int) -> dict[str, Any]:
        n = self.n
        self.n += 1
        entity = n % ENTITIES
        iso = datetime.fromtimestamp(t_us / 1e6, UTC).isoformat(timespec="microseconds")
        base: dict[str, Any] = {
            "time_fired": iso, "event_type": "state_changed", "origin": "LOCAL",
            "context_id": f"01JD{n:022d}", "area": f"Room {entity % 12}", "floor": "Ground",
            "cause": "device", "prev_state_seconds": round(self.rng.expovariate(1 / 60), 3),
        }  # fmt: skip
        if entity % 5:
            old = self.values[entity]
            value = self.values[entity] = round(old + self.rng.gauss(0, 0.05), 2)
            return base | {
                "entity_id": f"sensor.bench_{entity}", "domain": "sensor",
                "state": str(value), "old_state": str(old), "numeric_value": value,
                "device_class": "temperature", "unit": "°C",
                "attributes": {"state_class": "measurement",
                               "battery": 100 - (n // 100_000) % 100},
            }  # fmt: skip
        on = (n // ENTITIES) % 2 == 0
        return base | {
            "entity_id": f"light.bench_{entity}", "domain": "light",
            "state": "on" if on else "off", "old_state": "off" if on else "on",
            "attributes": {"brightness": self.rng.randrange(256), "color_mode": "brightness"},
        }  # fmt: skip

    def events(self, count: int, start_us: int, step_us: int = 1000) -> list[dict[str, Any]]:
        """``count`` events from ``start_us``, ``step_us`` apart on average. An entity's
        events are ``ENTITIES`` events apart, over a millisecond (the engine keeps
        milliseconds: each is its own sample)."""
        times = sorted(start_us + self.rng.randrange(count * step_us) for _ in range(count))
        return [self.event(t) for t in times]


def bodies(events: list[dict[str, Any]], size: int) -> list[bytes]:
    """Ingest request bodies of ``size`` events, encoded before any timing."""
    return [
        orjson.dumps({
            "batch_id": f"bench-{uuid.uuid4().hex}",
            "source": {"instance_id": "bench", "integration_version": "0.1.0"},
            "events": events[first : first + size],
        })
        for first in range(0, len(events), size)
    ]  # fmt: skip


def post(addon: MirroringAddon, body: bytes) -> None:
    headers = {**addon.headers, "Content-Type": "application/json"}
    status, answer = http("POST", f"{addon.url}/api/v1/ingest", body, headers)
    assert status == 200, answer[:300]


def target(addon: MirroringAddon) -> dict[str, Any]:
    return addon.targets()["vm"]


def engine_points(engine: VictoriaMetrics, expected: int | None = None) -> int:
    """Samples of one series per point: homeiq_events (one per event line) and
    homeiq_states_active (one per state line). With ``expected``, asked again for up to
    30 s until it holds that many: right after a drain, victoria-metrics' export may
    not show every acknowledged sample yet (seen: 210,000 of 280,000, all there 3 s
    later)."""
    deadline = time.monotonic() + 30
    while True:
        series = engine.export('{__name__=~"homeiq_events|homeiq_states_active"}')
        found = sum(len(s.samples) for s in series)
        if expected is None or found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drained(addon: MirroringAddon, timeout: float = 900) -> float:
    """Wait until the target's lag is 0 events; the time it was first seen so."""
    wait_until(lambda: target(addon)["lag_events"] == 0, timeout, "mirror lag 0")
    return time.perf_counter()


def full_outbox(
    addon: MirroringAddon, engine: VictoriaMetrics, home: Home, events: int
) -> dict[str, Any]:
    """Phase 1a: N events stored while the engine is down, then drained."""
    start_us = time.time_ns() // 1000 - 6 * 3_600_000_000
    requests = bodies(home.events(events, start_us, 2000), CHUNK)
    began = time.perf_counter()
    for body in requests:
        post(addon, body)
    ingest_s = time.perf_counter() - began
    assert target(addon)["points_written"] == 0
    engine.restart()
    first_seen: list[tuple[float, int]] = []

    def acknowledged() -> bool:
        written = int(target(addon)["points_written"])
        if written:
            first_seen.append((time.perf_counter(), written))
        return bool(written)

    assert addon.proc is not None and engine.proc is not None
    wait_until(acknowledged, 600, "first acknowledged chunk")
    t0, written0 = first_seen[0]
    cpu0 = cpu_s(addon.proc.pid), cpu_s(engine.proc.pid)
    t1 = drained(addon)
    cpu1 = cpu_s(addon.proc.pid), cpu_s(engine.proc.pid)
    written = int(target(addon)["points_written"])
    stored = engine_points(engine, expected=written)
    rate = (written - written0) / (t1 - t0)
    print(f"full outbox: {events:,} events ({written:,} points) drained at {rate:,.0f} "
          f"points/s (engine holds {stored:,}; ingest took {ingest_s:.1f} s)")  # fmt: skip
    return {
        "events": events, "points": written, "engine_points": stored,
        "points_per_s": round(rate), "timed_points": written - written0,
        "timed_seconds": round(t1 - t0, 3), "ingest_s_while_engine_down": round(ingest_s, 2),
        # Of the timed seconds, how many the add-on's process (all its threads) and the
        # engine were on a CPU: an add-on near 1.0 is bound by one core (the event loop
        # and the reader thread taking turns under the GIL).
        "addon_cpu_s": round(cpu1[0] - cpu0[0], 2), "engine_cpu_s": round(cpu1[1] - cpu0[1], 2),
        "points_per_addon_cpu_s": round((written - written0) / max(cpu1[0] - cpu0[0], 0.01)),
    }  # fmt: skip


def live(addon: MirroringAddon, engine: VictoriaMetrics, home: Home, events: int) -> dict[str, Any]:
    """Phase 1b: N more events ingested with the engine up, the mirror running."""
    start_us = time.time_ns() // 1000 - 3 * 3_600_000_000
    requests = bodies(home.events(events, start_us, 2000), CHUNK)
    before = int(target(addon)["points_written"])
    before_engine = engine_points(engine)
    began = time.perf_counter()
    for body in requests:
        post(addon, body)
    ingest_s = time.perf_counter() - began
    done = drained(addon)
    written = int(target(addon)["points_written"]) - before
    stored = engine_points(engine, expected=before_engine + written) - before_engine
    rate = written / (done - began)
    print(f"live: {events:,} events ({written:,} points) ingested and mirrored at {rate:,.0f} "
          f"points/s (ingest meanwhile {events / ingest_s:,.0f} events/s)")  # fmt: skip
    return {
        "events": events, "points": written, "engine_points": stored,
        "points_per_s": round(rate), "seconds": round(done - began, 3),
        "ingest_events_per_s": round(events / ingest_s),
    }  # fmt: skip


def steady(addon: MirroringAddon, home: Home, rate: int, seconds: float) -> dict[str, Any]:
    """Phase 2: ``rate`` events/s in ten batches a second at wall-clock times; the
    target's lag from /api/v1/health every second."""
    per_batch = rate // 10
    lags: list[float] = []
    lag_events: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            status, raw = http("GET", f"{addon.url}/api/v1/health", headers=addon.headers)
            if status == 200:
                report = orjson.loads(raw)["mirror"][0]
                lags.append(float(report["lag_seconds"]))
                lag_events.append(int(report["lag_events"]))

    sampler = threading.Thread(target=sample, daemon=True)
    sent = 0
    late = 0
    began = time.perf_counter()
    sampler.start()
    tick = began
    while tick - began < seconds:
        now = time.time_ns() // 1000
        # Spread over the batch's 100 ms, each event at (about) the time it is sent.
        (body,) = bodies(home.events(per_batch, now - 100_000, 100_000 // per_batch), per_batch)
        post(addon, body)
        sent += per_batch
        tick += 0.1
        pause = tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            late += 1
    elapsed = time.perf_counter() - began
    stop.set()
    sampler.join()
    achieved = sent / elapsed
    result = {
        "events_per_s": round(achieved), "seconds": round(elapsed, 1), "events": sent,
        "batches_late": late, "lag_seconds_median": round(statistics.median(lags), 3),
        "lag_seconds_max": round(max(lags), 3), "lag_events_median": statistics.median(lag_events),
        "lag_events_max": max(lag_events), "samples": len(lags),
    }  # fmt: skip
    print(f"steady {achieved:,.0f} events/s for {elapsed:.0f} s: lag median "
          f"{result['lag_seconds_median']} s, max {result['lag_seconds_max']} s")  # fmt: skip
    return result


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def engine_rows(engine: VictoriaMetrics) -> int:
    """Samples the engine stores (its vm_rows metric, every part type)."""
    _, raw = http("GET", f"{engine.url}/metrics")
    total = 0
    for line in raw.decode().splitlines():
        if line.startswith("vm_rows{") and 'type="storage/' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def engine_disk(engine: VictoriaMetrics) -> int:
    """The data dir's size once flushed and merged (settled: unchanged for 3 s)."""
    engine.flush()
    http("GET", f"{engine.url}/internal/force_merge")
    data = engine.work / "data"
    sizes = [du_bytes(data)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1)
        sizes.append(du_bytes(data))
        if len(sizes) >= 4 and len(set(sizes[-4:])) == 1:
            break
    return sizes[-1]


def where_time_goes(db: Path, url: str, limit: int = 200_000) -> dict[str, Any]:
    """The mirror's steps on a copy of the database, one at a time, in process: the SQL
    read of a chunk, decoding its JSON columns into the event dicts, building the lines
    (``points.event_lines``); ``outbox.read_events`` doing all three as the add-on calls
    it; then the HTTP write of those lines (``TargetWriter.write``: the body, the client,
    the engine), in the add-on's chunk sizes. The steps in this process are timed in CPU
    seconds of its thread (``time.thread_time``: what a step costs, whatever else the
    shared machine runs); the HTTP write in wall-clock seconds (the engine works in its
    own process) and in this thread's CPU seconds."""
    copy = WORK / "profile.db"
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    sql = (
        "SELECT id, time_fired, event_type, entity_id, domain, state, old_state,"
        " numeric_value, prev_state_seconds, attributes, data, area, floor, device_class,"
        " unit, cause, cause_name FROM events_enriched WHERE id > ? AND id <= ?"
        " ORDER BY id LIMIT ?"
    )
    steps = {"sql": 0.0, "decode": 0.0, "build": 0.0}
    built = 0
    after = 0
    while True:
        began = time.thread_time()
        rows = conn.execute(sql, (after, limit, LIVE_CHUNK)).fetchall()
        decoded = time.thread_time()
        if not rows:
            break
        after = rows[-1][0]
        events = [
            {
                "event_type": r[2], "entity_id": r[3], "domain": r[4], "state": r[5],
                "old_state": r[6], "numeric_value": r[7], "prev_state_seconds": r[8],
                "attributes": None if r[9] is None else orjson.loads(r[9]),
                "data": None if r[10] is None else orjson.loads(r[10]), "area": r[11],
                "floor": r[12], "device_class": r[13], "unit": r[14], "cause": r[15],
                "cause_name": r[16],
            }
            for r in rows
        ]  # fmt: skip
        building = time.thread_time()
        for row, event in zip(rows, events, strict=True):
            built += len(event_lines(event, strings=False, time_us=row[1]))
        steps["sql"] += decoded - began
        steps["decode"] += building - decoded
        steps["build"] += time.thread_time() - building
    lines: list[str] = []
    began = time.thread_time()
    after = 0
    while True:
        chunk = outbox.read_events(
            conn, after=after, upto=limit, limit=LIVE_CHUNK, selection=outbox.Selection(),
            strings=False,
        )  # fmt: skip
        if not chunk.read:
            break
        lines += chunk.lines
        after = chunk.next_cursor
    steps["read_events"] = time.thread_time() - began
    conn.close()
    points = len(lines)
    assert built == points, (built, points)
    per_chunk = points * LIVE_CHUNK // limit  # the points of one chunk of events

    async def write() -> float:
        async with TargetWriter(Target("probe", url, "", "probe", "homeiq")) as writer:
            began = time.perf_counter()
            for first in range(0, len(lines), per_chunk):
                await writer.write(lines[first : first + per_chunk])
            return time.perf_counter() - began

    cpu_began = time.thread_time()
    steps["http_write"] = asyncio.run(write())
    client_cpu_s = time.thread_time() - cpu_began
    result: dict[str, Any] = {
        "events": limit, "points": points,
        "points_per_s": {step: round(points / took) for step, took in steps.items()},
        "seconds": {step: round(took, 3) for step, took in steps.items()},
        "http_write_client_cpu_s": round(client_cpu_s, 3),
        # The add-on reads a chunk, writes it, commits, then reads the next: one after
        # the other, so its rate is at most this.
        "sequential_points_per_s": round(points / (steps["read_events"] + steps["http_write"])),
    }  # fmt: skip
    rates = result["points_per_s"]
    print(f"where the time goes, {points:,} points (points per CPU-second of each step; "
          f"HTTP per wall second): SQL {rates['sql']:,}, JSON decode {rates['decode']:,}, "
          f"build lines {rates['build']:,}; read_events {rates['read_events']:,}; HTTP write "
          f"{rates['http_write']:,}; one after the other "
          f"{result['sequential_points_per_s']:,}")  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=5000)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results: dict[str, Any] = {"machine": machine(), "date": datetime.now(UTC).isoformat()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    results["commit"] = commit
    engine = VictoriaMetrics(WORK / "vm")
    addon = MirroringAddon(
        WORK / "data", mirror_targets=[vm_target("vm", engine.url, send="events")]
    )
    addon.data_dir.mkdir()
    addon.start()
    home = Home()
    try:
        # Phase 1a: the engine is not up yet (its port is reserved, nothing listens).
        phase1 = full_outbox(addon, engine, home, args.events)
        phase1b = live(addon, engine, home, args.events)
        phase2 = steady(addon, home, args.rate, args.seconds)
        drained(addon)
        final = target(addon)
        _, raw = http("GET", f"{addon.url}/api/v1/health", headers=addon.headers)
        events_stored = int(orjson.loads(raw)["events_stored"])
        addon.stop()
        sqlite_bytes = du_bytes(addon.data_dir)
        vm_bytes = engine_disk(engine)
        samples = engine_rows(engine)
        profile = where_time_goes(addon.data_dir / "homeiq.db", engine.url)
    finally:
        addon.stop()
        addon.kill()
        engine.stop()
        engine.kill()
    points = int(final["points_written"])
    results["mirror_points_per_s"] = phase1["points_per_s"]
    results["mirror_points_per_s_how"] = (
        "live cursor draining a full outbox: the target configured from the start, its"
        " engine down while the events were stored, timed from the first acknowledged"
        " chunk to lag 0"
    )
    results["full_outbox"] = phase1
    results["live_points_per_s"] = phase1b["points_per_s"]
    results["live"] = phase1b
    results["lag_s_at_5k_events_per_s"] = phase2["lag_seconds_median"]
    results["lag_s_at_5k_events_per_s_max"] = phase2["lag_seconds_max"]
    results["steady"] = phase2
    results["disk"] = {
        "engine_bytes": vm_bytes, "engine_points": points, "engine_samples": samples,
        "engine_bytes_per_point": round(vm_bytes / points, 1),
        "engine_bytes_per_sample": round(vm_bytes / samples, 2) if samples else None,
        "sqlite_bytes": sqlite_bytes, "sqlite_events": events_stored,
        "sqlite_bytes_per_event": round(sqlite_bytes / events_stored, 1),
        "ratio_engine_per_point_to_sqlite_per_event": round(
            (vm_bytes / points) / (sqlite_bytes / events_stored), 3
        ),
    }  # fmt: skip
    results["where_time_goes"] = profile
    results["goals"] = GOALS
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    disk = results["disk"]
    print(f"disk: engine {disk['engine_bytes_per_point']} B/point "
          f"({disk['engine_bytes_per_sample']} B/sample), SQLite "
          f"{disk['sqlite_bytes_per_event']} B/event: ratio "
          f"{disk['ratio_engine_per_point_to_sqlite_per_event']}")  # fmt: skip
    rate, lag_max = results["mirror_points_per_s"], results["lag_s_at_5k_events_per_s_max"]
    rate_goal, lag_goal = GOALS["mirror_points_per_s"], GOALS["lag_s_at_5k_events_per_s"]
    print(f"mirror_points_per_s: {rate:,} (goal ≥ {rate_goal:,}, ratio {rate / rate_goal:.2f}) "
          f"{'met' if rate >= rate_goal else 'NOT met'}")  # fmt: skip
    print(f"lag_s_at_5k_events_per_s: median {results['lag_s_at_5k_events_per_s']} s, max "
          f"{lag_max} s (goal < {lag_goal}) "
          f"{'met' if lag_max < lag_goal else 'NOT met'}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"written {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
