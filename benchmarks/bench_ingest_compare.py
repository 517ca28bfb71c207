"""Ingest over HTTP, this tree against an older revision, in alternating runs.

Run: .venv/bin/python benchmarks/bench_ingest_compare.py [--rev REV] [--rounds N]

A change to the ingest must keep its rate (issue 13: within 5 % of before). These
shared machines drift by more than that over minutes, so one run of each, minutes
apart, says little: this checks REV out into a temporary git worktree and starts the
add-on from each source tree in turn (old, new, new, old, ...), ``--rounds`` times each
(3 at least),
every run measured exactly as bench_store.py's ``ingest_events_per_s`` (the same
200,000 realistic events in batches of 1000, four requests in flight, a fresh data dir,
one untimed batch first). It writes the medians, every round's figure and their ratio
to ``benchmarks/results/ingest_compare.json``.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
import os
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import REPO, Addon, Home, http_ingest, machine, make_batch

WORK = REPO / "benchmarks" / ".work" / "ingest_compare"
RESULTS = REPO / "benchmarks" / "results" / "ingest_compare.json"
BEFORE = "177876f"  # the add-on before issue 13's single ingest path
PER_BATCH = 1000
INFLIGHT = 4


async def one_run(
    source: Path, bodies: list[bytes], warmup: bytes, tag: str
) -> tuple[float, float]:
    """(events/s, events per add-on CPU-second) of one HTTP run of the add-on from
    ``source`` on a fresh data dir."""
    data = WORK / tag
    addon = Addon(data, source)
    try:
        await addon.wait()
        # One untimed batch first: it starts the decode worker (once per add-on start).
        await http_ingest(addon, [warmup], 1, inflight=1)
        cpu_before = addon.cpu_s()
        rate: float = await http_ingest(addon, bodies, PER_BATCH, INFLIGHT)
        # What the service costs, whatever else runs on the machine.
        return rate, len(bodies) * PER_BATCH / (addon.cpu_s() - cpu_before)
    finally:
        addon.stop()
        shutil.rmtree(data, ignore_errors=True)


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True)
    return done.stdout.strip()


async def alternate(
    sources: dict[str, Path], rounds: int, total: int
) -> dict[str, list[tuple[int, int]]]:
    """Every round's (events/s, per add-on CPU-second) of each tree, in alternating order."""
    home = Home()
    first_us = time.time_ns() // 1000 - 3_600_000_000  # the last hour, 1 ms apart
    bodies = [
        orjson.dumps(
            # In every event: the form every revision reads.
            make_batch(home, PER_BATCH, first_us + j * PER_BATCH * 1000, 1000, f"c-{j}", False)
        )
        for j in range(total // PER_BATCH)
    ]
    warmup = orjson.dumps(make_batch(home, 1000, first_us - 1000, 1, "warm-up", False))
    figures: dict[str, list[tuple[int, int]]] = {name: [] for name in sources}
    for i in range(rounds):
        # before, after, after, before, ...: a drift of the machine favours neither.
        order = list(sources) if i % 2 == 0 else list(reversed(sources))
        for name in order:
            rate, per_cpu = await one_run(sources[name], bodies, warmup, f"{name}-{i}")
            figures[name].append((round(rate), round(per_cpu)))
            print(
                f"round {i + 1}, {name}: {rate:,.0f} events/s, {per_cpu:,.0f} per add-on"
                " CPU-second",
                flush=True,
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default=BEFORE, help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ingest-events", type=int, default=200_000)
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds: at least 3")
    rev = _git("rev-parse", "--short", args.rev)
    head = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--", "addon"):
        head += "+changes"
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    old_tree = Path(tempfile.mkdtemp(prefix="homeiq-before-")) / "tree"
    _git("worktree", "add", "--detach", str(old_tree), rev)
    info = machine()
    try:
        sources = {"before": old_tree / "addon", "after": REPO / "addon"}
        figures = asyncio.run(alternate(sources, args.rounds, args.ingest_events))
    finally:
        _git("worktree", "remove", "--force", str(old_tree))
        shutil.rmtree(old_tree.parent, ignore_errors=True)
        shutil.rmtree(WORK, ignore_errors=True)
    rates = {name: [r for r, _ in runs] for name, runs in figures.items()}
    per_cpu = {name: [c for _, c in runs] for name, runs in figures.items()}
    before = statistics.median(rates["before"])
    after = statistics.median(rates["after"])
    info["load_avg_at_end"] = os.getloadavg()
    results: dict[str, Any] = {
        "machine": info,
        "date": datetime.now(UTC).isoformat(),
        "before_rev": rev,
        "after_rev": head,
        "events_per_run": args.ingest_events // PER_BATCH * PER_BATCH,
        "batch_size": PER_BATCH,
        "requests_in_flight": INFLIGHT,
        "ingest_events_per_s_before": round(before),
        "ingest_events_per_s_after": round(after),
        "ingest_events_per_s_before_rounds": rates["before"],
        "ingest_events_per_s_after_rounds": rates["after"],
        "ratio_after_to_before": round(after / before, 3),
        # Each round's after over its before, run back to back: less exposed to the
        # machine's drift than the ratio of the medians.
        "ratio_after_to_before_by_round": [
            round(a / b, 3) for a, b in zip(rates["after"], rates["before"], strict=True)
        ],
        # Less sensitive to other load on the machine than the rate.
        "ingest_events_per_addon_cpu_s_before": round(statistics.median(per_cpu["before"])),
        "ingest_events_per_addon_cpu_s_after": round(statistics.median(per_cpu["after"])),
        "ingest_events_per_addon_cpu_s_before_rounds": per_cpu["before"],
        "ingest_events_per_addon_cpu_s_after_rounds": per_cpu["after"],
    }
    print(
        f"before ({rev}): {before:,.0f} events/s (median), after ({head}): {after:,.0f}"
        f" events/s; ratio {after / before:.3f}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"written {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
