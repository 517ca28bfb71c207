"""Probe of the add-on's mirror end to end: points/s into one victoria-metrics, and the
latency of live ingest with and without a backfill running.

    HOMEIQ_ADDON_PYTHON=$PWD/.venv-addon/bin/python \\
        .venv-addon/bin/python -m benchmarks.probe_mirror_backfill [--events 200000]

Prints one JSON object (figures, not assertions); benchmarks/bench_influx.py measures
the mirror's speed and lag, this the latency it costs live ingest during a backfill.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
import json
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any

from tests.mirror.addon import T0, MirroringAddon, sensor_stream, state, vm_target
from tests.mirror.engines import VictoriaMetrics, running, wait_until


def _latencies(addon: MirroringAddon, seconds: float, per_batch: int, start: int) -> list[float]:
    """Batches of ``per_batch`` events, ten a second, for ``seconds``: each POST's ms."""
    took = []
    n = start
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = [
            state(T0 + timedelta(days=400, seconds=n + i), f"sensor.live{i % 20}", "1.0",
                  numeric=1.0)
            for i in range(per_batch)
        ]  # fmt: skip
        n += per_batch
        began = time.perf_counter()
        addon.ingest(events, size=per_batch)
        took.append((time.perf_counter() - began) * 1000)
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - began)))
    return took


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
        "batches": len(ordered),
    }


def _steady(addon: MirroringAddon, per_s: int, seconds: float) -> dict[str, float]:
    """Ingest ``per_s`` events a second (ten batches) for ``seconds`` while sampling the
    target's lag; the largest lag in events, and in seconds of that ingest."""
    lags = []
    n = 0
    per_batch = per_s // 10
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.perf_counter()
        addon.ingest(sensor_stream(per_batch, start=T0 + timedelta(days=800, seconds=n)),
                     size=per_batch)  # fmt: skip
        n += per_batch
        if n % per_s == 0:
            lags.append(addon.targets()["vm"]["lag_events"])
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - began)))
    achieved = n / seconds
    return {"events_per_s": round(achieved), "max_lag_events": max(lags),
            "max_lag_s": round(max(lags) / achieved, 2)}  # fmt: skip


def _drain(engine: VictoriaMetrics, addon: MirroringAddon, events: int) -> float:
    """Points/s of a full outbox draining into the engine once it is up: from the first
    acknowledged chunk to the last."""
    history = sensor_stream(events, start=T0 + timedelta(days=1200), entities=500)
    addon.ingest(history, size=5000)
    engine.start()
    first: list[float] = []
    before = addon.targets()["vm"]["points_written"]

    def drained() -> bool:
        target = addon.targets()["vm"]
        if not first and target["points_written"] > before:
            first.append(time.perf_counter())
        return bool(target["lag_events"] == 0)

    wait_until(drained, 600, "drained")
    written = addon.targets()["vm"]["points_written"] - before
    return written / (time.perf_counter() - first[0])


def probe(events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        engine = VictoriaMetrics(work / "vm")
        with running(engine):
            target = vm_target("vm", engine.url)
            addon = MirroringAddon(work / "data", mirror_targets=[target])
            addon.data_dir.mkdir()
            addon.start()
            try:
                history = sensor_stream(events, entities=500)
                # Live: stored and mirrored at once, as fast as ingest goes.
                began = time.perf_counter()
                addon.ingest(history, size=5000)
                addon.wait_mirrored("vm", timeout=600)
                live_s = time.perf_counter() - began
                quiet = _latencies(addon, 10, 200, 0)
                # Backfill: everything again, throttled, while live ingest goes on.
                status, _ = addon.call("POST", "/api/v1/mirror/targets/vm/backfill")
                assert status == 202
                began = time.perf_counter()
                busy = _latencies(addon, 10, 200, 10**7)
                wait_until(lambda: addon.targets()["vm"]["status"] == "ok", 600, "backfill")
                backfill_s = time.perf_counter() - began
                steady = _steady(addon, 5000, 20)
                report = addon.targets()["vm"]
                engine.stop()
                drain = _drain(engine, addon, events)
            finally:
                addon.stop()
    return {
        "events": events,
        "live_ingest_and_mirror_points_per_s": round(events / live_s),
        "backfill_points_per_s_with_live_ingest": round(events / backfill_s),
        "points_written": report["points_written"],
        "outbox_drain_points_per_s": round(drain),
        "lag_at_5k_events_per_s": steady,
        "ingest_latency_without_backfill": _summary(quiet),
        "ingest_latency_during_backfill": _summary(busy),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    print(json.dumps(probe(parser.parse_args().events), indent=2))


if __name__ == "__main__":
    main()
