"""Capture benchmark (issue 3 §8): HomeIQ's integration against HA's core influxdb one.

Each phase runs in its own child process with a plain `HomeAssistant` instance in a plain
event loop (not the pytest fixture, whose loop runs in debug mode):

- baseline: 200,000 state changes over 1,000 entities, nothing listening but HA itself;
- homeiq:   the same load with the integration loaded and the real add-on on loopback;
- influxdb: the same load with the core influxdb integration writing (API v2) to Debian's
            victoria-metrics `/api/v2/write` on a free loopback port.

Figures: (a) loop_ratio = state-set throughput homeiq / baseline; (b) end-to-end events/s from
the first state set until the add-on committed them all; (c) the same for core influxdb, and
(b)/(c); (d) RSS growth of the HA process in the homeiq phase (peak minus before the load).

Run: .venv/bin/python benchmarks/bench_capture.py [--events N] [--entities N]
Writes benchmarks/results/capture.json.
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import contextmanager
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
from typing import Any
import urllib.parse
import urllib.request

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "capture.json"
CHUNK = 1000  # state sets between two yields to the loop, as a busy HA would interleave


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def addon_process(work: Path):
    data = work / "addon"
    data.mkdir()
    port = free_port()
    log = (work / "addon.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "homeiq_addon",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--ingress-port",
            str(free_port()),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "addon")},
        stdout=log,
        stderr=log,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health?minimal=1")
        yield f"http://127.0.0.1:{port}", (data / "token").read_text().strip()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@contextmanager
def victoria_metrics(work: Path):
    port = free_port()
    log = (work / "vm.log").open("wb")
    proc = subprocess.Popen(
        [
            "victoria-metrics",
            f"-storageDataPath={work / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


async def make_hass(config_dir: Path) -> Any:
    """A real HA core with registries, auth and config entries, as bootstrap builds it."""
    sys.path.insert(0, str(REPO))  # custom_components/ lives at the repo root
    from homeassistant import auth, bootstrap, config_entries, loader
    from homeassistant.core import HomeAssistant

    hass = HomeAssistant(str(config_dir))
    hass.config.skip_pip = True
    await hass.config.async_set_time_zone("UTC")
    loader.async_setup(hass)
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await bootstrap.async_load_base_functionality(hass)
    hass.auth = await auth.auth_manager_from_config(hass, [], [])
    from homeassistant.setup import async_setup_component

    # HA's shared aiohttp session resolves through zeroconf, which asks `network`.
    assert await async_setup_component(hass, "network", {})
    await hass.async_start()
    return hass


async def set_states(hass: Any, events: int, entities: int, offset: int = 0) -> float:
    """The load: `events` state changes round-robin over `entities`; returns seconds taken."""
    ids = [f"sensor.bench_{i}" for i in range(entities)]
    attrs = [
        {
            "unit_of_measurement": "W",
            "device_class": "power",
            "state_class": "measurement",
            "friendly_name": f"Bench {i}",
        }
        for i in range(entities)
    ]
    async_set = hass.states.async_set
    start = time.perf_counter()
    for first in range(0, events, CHUNK):
        for n in range(first, min(first + CHUNK, events)):
            e = n % entities
            async_set(ids[e], str(offset + n), attrs[e])
        await asyncio.sleep(0)
    return time.perf_counter() - start


async def phase_baseline(work: Path, events: int, entities: int) -> dict[str, float]:
    hass = await make_hass(work / "config")
    # create the entities first, as the other phases do
    await set_states(hass, entities, entities, offset=-entities)
    seconds = await set_states(hass, events, entities)
    await hass.async_stop()
    return {"set_events_per_s": events / seconds}


async def phase_listener(work: Path, events: int, entities: int) -> dict[str, float]:
    """Baseline plus one no-op MATCH_ALL listener: what any bus subscriber costs HA.

    With no listener at all HA skips building Event objects; with one it builds them and
    chains them to the states (context.origin_event), and the extra young objects make the
    garbage collector run. This phase separates that cost from HomeIQ's own.
    """
    from homeassistant.core import callback

    hass = await make_hass(work / "config")
    hass.bus.async_listen("*", callback(lambda event: None))
    await set_states(hass, entities, entities, offset=-entities)
    rss_before = rss_mb()
    seconds = await set_states(hass, events, entities)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await hass.async_stop()
    return {"set_events_per_s": events / seconds, "rss_growth_mb": max(peak, rss_mb()) - rss_before}


async def phase_homeiq(work: Path, events: int, entities: int) -> dict[str, float]:
    from homeassistant.config_entries import ConfigEntry

    from custom_components.homeiq.const import CONF_BATCH_SIZE, CONF_FLUSH_INTERVAL, DEFAULT_OPTIONS

    with addon_process(work) as (url, token):
        hass = await make_hass(work / "config")
        entry = ConfigEntry(
            data={"url": url, "token": token},
            discovery_keys={},
            domain="homeiq",
            minor_version=1,
            options={**DEFAULT_OPTIONS, CONF_BATCH_SIZE: 5000, CONF_FLUSH_INTERVAL: 1},
            source="user",
            subentries_data=None,
            title="HomeIQ",
            unique_id="bench",
            version=1,
        )
        await hass.config_entries.async_add(entry)
        await hass.async_block_till_done()
        pipeline = entry.runtime_data.pipeline
        await set_states(hass, entities, entities, offset=-entities)
        await pipeline.async_wait_delivered()
        stored_before = await stored(url, token)
        rss_before = rss_mb()
        start = time.perf_counter()
        seconds = await set_states(hass, events, entities)
        await pipeline.async_wait_delivered()
        end_to_end = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        delivered = await stored(url, token, at_least=stored_before + events) - stored_before
        dropped = pipeline.dropped_total
        await hass.async_stop()
    assert delivered >= events and dropped == 0, (delivered, dropped)
    return {
        "set_events_per_s": events / seconds,
        "end_to_end_events_per_s": events / end_to_end,
        "rss_growth_mb": max(peak, rss_mb()) - rss_before,
        "delivered": delivered,
    }


async def stored(url: str, token: str, at_least: int = 0) -> int:
    """Events the add-on reports stored (its health figure may lag a moment: poll briefly)."""

    def get() -> int:
        request = urllib.request.Request(
            f"{url}/api/v1/health", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(json.load(resp)["events_stored"])

    for _ in range(50):
        count = await asyncio.to_thread(get)
        if count >= at_least:
            break
        await asyncio.sleep(0.1)
    return count


async def phase_influxdb(work: Path, events: int, entities: int) -> dict[str, float]:
    # The component imports the InfluxDB 1.x client at module level; the v2 path measured here
    # never uses it, so an empty stand-in saves installing a package nobody calls.
    fake = types.ModuleType("influxdb")
    fake.InfluxDBClient = object  # type: ignore[attr-defined]
    fake.exceptions = types.SimpleNamespace(  # type: ignore[attr-defined]
        InfluxDBClientError=type("InfluxDBClientError", (Exception,), {}),
        InfluxDBServerError=type("InfluxDBServerError", (Exception,), {}),
    )
    sys.modules.setdefault("influxdb", fake)
    from homeassistant.setup import async_setup_component

    with victoria_metrics(work) as vm_url:
        hass = await make_hass(work / "config")
        config = {
            "influxdb": {
                "api_version": "2",
                "host": "127.0.0.1",
                "port": int(vm_url.rsplit(":", 1)[1]),
                "ssl": False,
                "token": "bench",
                "organization": "bench",
                "bucket": "bench",
            }
        }
        assert await async_setup_component(hass, "influxdb", config)
        thread = hass.data["influxdb"]
        await set_states(hass, entities, entities, offset=-entities)
        await hass.async_add_executor_job(thread.block_till_done)
        start = time.perf_counter()
        await set_states(hass, events, entities)
        # Two markers: the second is taken only after the batch holding the last event is written.
        await hass.async_add_executor_job(thread.block_till_done)
        await hass.async_add_executor_job(thread.block_till_done)
        seconds = time.perf_counter() - start
        errors = thread.write_errors
        await hass.async_stop()
        points = await asyncio.to_thread(vm_points, vm_url)
    assert points >= events, (points, events)
    return {"end_to_end_events_per_s": events / seconds, "write_errors": errors, "points": points}


def vm_points(vm_url: str) -> int:
    """Numeric points VictoriaMetrics stored (proof the writes really landed)."""
    with urllib.request.urlopen(f"{vm_url}/internal/force_flush", timeout=30):
        pass
    query = urllib.parse.urlencode({"match[]": '{__name__=~".+_value"}'})
    with urllib.request.urlopen(f"{vm_url}/api/v1/export?{query}", timeout=120) as resp:
        return sum(len(json.loads(line)["values"]) for line in resp if line.strip())


PHASES = {
    "baseline": phase_baseline,
    "listener": phase_listener,
    "homeiq": phase_homeiq,
    "influxdb": phase_influxdb,
}


def run_phase(name: str, events: int, entities: int) -> dict[str, Any]:
    """Run one phase in a fresh interpreter so phases do not share memory or threads."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            name,
            "--events",
            str(events),
            "--entities",
            str(entities),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'addon'}"},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=1_000)
    parser.add_argument("--phase", choices=PHASES)
    args = parser.parse_args()
    if args.phase:
        work = Path(tempfile.mkdtemp(prefix=f"bench-capture-{args.phase}-"))
        (work / "config").mkdir()
        try:
            result = asyncio.run(PHASES[args.phase](work, args.events, args.entities))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(result))
        return

    baseline = run_phase("baseline", args.events, args.entities)
    listener = run_phase("listener", args.events, args.entities)
    homeiq = run_phase("homeiq", args.events, args.entities)
    influx = run_phase("influxdb", args.events, args.entities)
    result = {
        "loop_ratio": round(homeiq["set_events_per_s"] / baseline["set_events_per_s"], 3),
        "end_to_end_events_per_s": round(homeiq["end_to_end_events_per_s"]),
        "core_influxdb_events_per_s": round(influx["end_to_end_events_per_s"]),
        "ratio_vs_core_influxdb": round(
            homeiq["end_to_end_events_per_s"] / influx["end_to_end_events_per_s"], 2
        ),
        "rss_growth_mb": round(homeiq["rss_growth_mb"], 1),
        "goals": {
            "loop_ratio": ">= 0.7",
            "end_to_end_events_per_s": ">= 50000",
            "ratio_vs_core_influxdb": ">= 3",
            "rss_growth_mb": "<= 30",
        },
        "details": {
            "baseline": baseline,
            "noop_listener": listener,
            "homeiq": homeiq,
            "influxdb": influx,
            "loop_ratio_vs_noop_listener": round(
                homeiq["set_events_per_s"] / listener["set_events_per_s"], 3
            ),
            "events": args.events,
            "entities": args.entities,
            "chunk": CHUNK,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
