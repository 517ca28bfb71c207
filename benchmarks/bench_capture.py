"""Capture benchmark (issue 15 §2): what capturing every event costs Home Assistant's process.

Each configuration runs in its own child process with a plain `HomeAssistant` instance in a
plain event loop (not the pytest fixture, whose loop runs in debug mode), under the same load:
`--events` state changes (50,000) round-robin over `--entities` sensors (500), 1,000 state
sets between two yields to the loop. The entities are created before the clock starts.

- `bare`:          nothing listens but HA itself (HA then builds no Event objects at all);
- `noop_listener`: one no-op MATCH_ALL listener, what any bus subscriber costs HA;
- `recorder`:      HA's recorder on a fresh SQLite file (its defaults);
- `core_influxdb`: HA's influxdb integration (API v2, its asynchronous client) writing to
                   Debian's victoria-metrics `/api/v2/write` on loopback;
- `homeiq`:        this integration with the real add-on process on loopback;
- `homeiq@REF`:    with `--compare REF`, the integration as it is in git commit REF, against
                   the same add-on (this checkout's): the honest before/after on a noisy machine.

The configurations alternate within each round (`--rounds`, 3; the order rotates from round
to round) and every figure is the median over the rounds, with its spread (min, max).

What each phase measures, from the first state set of the load until the work is verifiably
complete: for `homeiq` until the add-on acknowledged (committed) every batch, then its
`events_stored` is checked; for `core_influxdb` until victoria-metrics holds every point
(polled after `/internal/force_flush`; its client writes from its own threads, so an idle HA
proves nothing); for the recorder until its queue is empty and a commit has run, then its
`states` rows are counted; for `bare` and `noop_listener` when the last state is set.

Figures in `benchmarks/results/capture.json`:

- `ha_cpu_us_per_event`: CPU time of all threads of the HA process (`time.process_time()`)
  over that span, per event; the thread polling victoria-metrics is subtracted (its own
  `time.thread_time()`).
- `ha_loop_thread_us_per_event`: CPU time of the event-loop thread alone over that span
  (`time.thread_time()` read in the loop thread at both ends), per event.
- `ha_gc_us_per_event`, `ha_loop_thread_gc_us_per_event`: CPU time of the garbage
  collections in that span (a `gc.callbacks` entry reads `time.thread_time()` as each one
  starts and stops), in every thread and on the loop thread;
  `ha_loop_thread_without_gc_us_per_event` is the loop thread's minus its collections.
- `ha_cpu_beyond_noop_us_per_event`: `ha_cpu_us_per_event` minus the no-op listener's of
  the same round.
- `addon_cpu_us_per_event`: CPU time (user + system, psutil) of the add-on over the same
  span, per event: its process and its children (the decode worker it starts for big
  bodies, live or ended); `whole_path_cpu_us_per_event` adds HomeIQ's HA CPU to it. The
  decode worker is started (by the setup's first batch) and idle before the clock starts;
  `addon_worker_start_cpu_s` is what its start took, once per burst after 30 s without
  one.
- `backlog_drain_events_per_s`: after the measured load, HomeIQ's shipper is stopped, the
  same load is spooled, and the shipper starts again: the events of that backlog (what an
  outage of the add-on leaves) over the seconds until the add-on acknowledged all of it.
  Not part of any other figure.
- `rss_growth_mb`: the HA process's peak RSS (`ru_maxrss`) minus its RSS before the load;
  `rss_growth_over_noop_mb` is HomeIQ's minus the no-op listener's of the same round.
- `loop_ratio_vs_noop_listener`: state sets per second (the wall time of the load's loop)
  with HomeIQ over those with the no-op listener, in the same round.
- `ratio_vs_core_influxdb`: end-to-end events per second (first state set to the last event
  committed by the add-on) over core influxdb's (first state set to the last point held by
  victoria-metrics), in the same round.

Run: PYTHONPATH=.:addon .venv/bin/python benchmarks/bench_capture.py [--rounds N]
     [--events N] [--entities N] [--only homeiq,noop_listener,...] [--compare REF]
Writes benchmarks/results/capture.json (not with --only or --no-write).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
import gc
import json
import os
from pathlib import Path
import platform
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from types import MappingProxyType
from typing import Any
import urllib.parse
import urllib.request

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "capture.json"
CHUNK = 1000  # state sets between two yields to the loop, as a busy HA would interleave
CONFIGS = ("bare", "noop_listener", "recorder", "core_influxdb", "homeiq")
# Where the integration is imported from (a `--compare` child gets a checkout of REF).
CODE_ROOT = Path(os.environ.get("BENCH_CAPTURE_CODE_ROOT", REPO))
GOALS = {
    "ha_cpu_beyond_noop_us_per_event": "<= 4",
    "ha_loop_thread_us_per_event": "homeiq <= recorder",
    "rss_growth_over_noop_mb": "<= 10",
    "whole_path_cpu_us_per_event": "<= 20",
    "loop_ratio_vs_noop_listener": ">= 0.8",
    "ratio_vs_core_influxdb": ">= 5",
}


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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def addon_python() -> str:
    """The add-on's own environment when there is one (as it ships), else this one."""
    own = os.environ.get("HOMEIQ_ADDON_PYTHON") or str(REPO / ".venv-addon" / "bin" / "python")
    return own if Path(own).exists() else sys.executable


@contextmanager
def addon_process(work: Path) -> Iterator[tuple[str, str, int]]:
    data = work / "addon"
    data.mkdir()
    port = free_port()
    log = (work / "addon.log").open("wb")
    proc = subprocess.Popen(
        [
            addon_python(),
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
        yield f"http://127.0.0.1:{port}", (data / "token").read_text().strip(), proc.pid
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@contextmanager
def victoria_metrics(work: Path) -> Iterator[str]:
    port = free_port()
    log = (work / "vm.log").open("wb")
    proc = subprocess.Popen(
        [
            "victoria-metrics",
            f"-storageDataPath={work / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            # Queries see every point at once (default: not the last 30 s), uncached.
            "-search.latencyOffset=0s",
            "-search.disableCache",
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
    sys.path.insert(0, str(CODE_ROOT))  # custom_components/ lives at the repo root
    from homeassistant import auth, bootstrap, config_entries, loader
    from homeassistant.core import HomeAssistant
    from homeassistant.setup import async_setup_component

    hass = HomeAssistant(str(config_dir))
    hass.config.skip_pip = True
    await hass.config.async_set_time_zone("UTC")
    loader.async_setup(hass)
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await bootstrap.async_load_base_functionality(hass)
    hass.auth = await auth.auth_manager_from_config(hass, [], [])
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


class CollectionClock:
    """A `gc.callbacks` entry: the CPU time of the garbage collections, all of them and
    those run on the event-loop thread (each collection runs in the thread that started
    it, so `thread_time()` at its start and stop is its cost)."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.total_s = 0.0
        self.loop_s = 0.0
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = time.thread_time()
            return
        if (start := self._started.pop(thread, None)) is None:
            return  # started before the clock did
        spent = time.thread_time() - start
        self.total_s += spent
        if thread == self.loop_thread:
            self.loop_s += spent


class PollThread:
    """Runs a blocking check in its own thread and reports that thread's CPU time, which the
    phase subtracts: the check is the benchmark's, not the integration's."""

    def __init__(self) -> None:
        self.cpu_s = 0.0

    async def until(self, check: Callable[[], bool], interval: float) -> None:
        done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def run() -> None:
            start = time.thread_time()
            try:
                while not check():
                    time.sleep(interval)
                outcome: BaseException | None = None
            except BaseException as err:  # handed to the loop
                outcome = err
            self.cpu_s += time.thread_time() - start
            loop.call_soon_threadsafe(done.set_result, outcome)

        threading.Thread(target=run, daemon=True).start()
        if (err := await done) is not None:
            raise err


async def measure(
    hass: Any, events: int, entities: int, complete: Callable[[], Awaitable[float]]
) -> dict[str, Any]:
    """Run the load; `complete()` waits until the work is verifiably done and returns the
    CPU seconds of the HA process spent checking (not counted)."""
    gc.collect()  # every configuration starts with no garbage left from its setup
    rss_before = rss_mb()
    gc_before = gc.get_stats()
    gc_clock = CollectionClock(threading.get_ident())
    gc.callbacks.append(gc_clock)
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    loop_start = time.thread_time()
    set_seconds = await set_states(hass, events, entities)
    check_cpu = await complete()
    loop_cpu = time.thread_time() - loop_start
    cpu = time.process_time() - cpu_start - check_cpu
    wall = time.perf_counter() - wall_start
    gc.callbacks.remove(gc_clock)
    gc_stats = list(zip(gc_before, gc.get_stats(), strict=True))
    return {
        # Which collections ran in the span: a full one costs several µs per event here.
        "gc_collections": [b["collections"] - a["collections"] for a, b in gc_stats],
        "gc_collected": [b["collected"] - a["collected"] for a, b in gc_stats],
        "ha_cpu_us_per_event": cpu / events * 1e6,
        "ha_loop_thread_us_per_event": loop_cpu / events * 1e6,
        # Which thread runs a collection is the one whose allocation crossed the threshold:
        # a configuration with a busy thread of its own moves HA's collections there.
        "ha_gc_us_per_event": gc_clock.total_s / events * 1e6,
        "ha_loop_thread_gc_us_per_event": gc_clock.loop_s / events * 1e6,
        "set_events_per_s": events / set_seconds,
        "end_to_end_events_per_s": events / wall,
        "rss_growth_mb": max(peak_rss_mb(), rss_mb()) - rss_before,
    }


async def nothing_left() -> float:
    return 0.0


async def phase_bare(work: Path, events: int, entities: int) -> dict[str, Any]:
    hass = await make_hass(work / "config")
    await set_states(hass, entities, entities, offset=-entities)
    result = await measure(hass, events, entities, nothing_left)
    await hass.async_stop()
    return result


async def phase_noop_listener(work: Path, events: int, entities: int) -> dict[str, Any]:
    """With one listener HA builds Event objects and chains them to the states
    (context.origin_event); the extra young objects make the garbage collector run."""
    from homeassistant.core import callback

    hass = await make_hass(work / "config")
    hass.bus.async_listen("*", callback(lambda event: None))
    await set_states(hass, entities, entities, offset=-entities)
    result = await measure(hass, events, entities, nothing_left)
    await hass.async_stop()
    return result


async def phase_capture_listener(work: Path, events: int, entities: int) -> dict[str, Any]:
    """HomeIQ's bus listener alone (`capture.Capture`, default options): its buffer is
    taken and let go whenever it fills, so nothing is serialized, spooled or sent. What
    the event loop pays per event before the rest of the pipeline."""
    from custom_components.homeiq.capture import Capture
    from custom_components.homeiq.enrich import Enricher
    from custom_components.homeiq.pipeline import CONVERT_CHUNK

    hass = await make_hass(work / "config")
    capture: Capture | None = None

    def let_go() -> None:
        assert capture is not None
        capture.take()

    capture = Capture(
        hass, Enricher(hass).entity_info, lambda: hass.loop.call_soon(let_go), CONVERT_CHUNK
    )
    capture.apply_options({})
    await set_states(hass, entities, entities, offset=-entities)
    result = await measure(hass, events, entities, nothing_left)
    capture.stop()
    await hass.async_stop()
    return result


async def phase_recorder(work: Path, events: int, entities: int) -> dict[str, Any]:
    from homeassistant.helpers import recorder as recorder_helper
    from homeassistant.helpers.recorder import get_instance
    from homeassistant.setup import async_setup_component
    from homeassistant.util import dt as dt_util

    db = work / "recorder.db"
    hass = await make_hass(work / "config")
    recorder_helper.async_initialize_recorder(hass)  # what bootstrap does before setting it up
    assert await async_setup_component(
        hass, "recorder", {"recorder": {"db_url": f"sqlite:///{db}"}}
    )
    instance = get_instance(hass)
    await instance.async_db_ready
    await set_states(hass, entities, entities, offset=-entities)

    async def committed() -> float:
        # Its queue empty and no write left uncommitted (a commit is queued, then waited for).
        while not instance._queue.empty() or instance._event_session_has_pending_writes:
            await instance.async_block_till_done()
            instance._async_commit(dt_util.utcnow())
            await instance.async_block_till_done()
        return 0.0

    await committed()
    with sqlite3.connect(db) as conn:
        rows_before = conn.execute("SELECT count(*) FROM states").fetchone()[0]
    result = await measure(hass, events, entities, committed)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM states").fetchone()[0] - rows_before
    await hass.async_stop()
    assert rows >= events, (rows, events)
    return {**result, "rows": rows}


async def homeiq_started(hass: Any, url: str, token: str, entities: int) -> Any:
    """Set HomeIQ up (a real config entry: batch size 5,000, flush interval 1 s) against
    the add-on at `url`, create the entities and deliver their first states; return its
    pipeline."""
    from homeassistant.config_entries import ConfigEntry

    from custom_components.homeiq import const
    from custom_components.homeiq.const import CONF_BATCH_SIZE, CONF_FLUSH_INTERVAL, DEFAULT_OPTIONS

    assert Path(const.__file__).is_relative_to(CODE_ROOT), (const.__file__, CODE_ROOT)
    entry = ConfigEntry(
        data={"url": url, "token": token},
        discovery_keys=MappingProxyType({}),
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
    return pipeline


async def phase_homeiq(work: Path, events: int, entities: int) -> dict[str, Any]:
    import psutil  # type: ignore[import-untyped]

    with addon_process(work) as (url, token, addon_pid):
        addon = psutil.Process(addon_pid)
        hass = await make_hass(work / "config")
        pipeline = await homeiq_started(hass, url, token, entities)
        # That first batch started the add-on's decode worker (for big bodies): let it
        # finish starting before the clock, as HA and its entities did. Its start is a
        # cost once per burst (it leaves after 30 s without one), reported on its own.
        worker_start_cpu = await asyncio.to_thread(worker_started, addon)
        stored_before = await stored(url, token)
        addon_start = addon_cpu_seconds(addon)

        async def delivered() -> float:
            await pipeline.async_wait_delivered()  # every batch acknowledged = committed
            return 0.0

        result = await measure(hass, events, entities, delivered)
        addon_end = addon_cpu_seconds(addon)
        stored_now = await stored(url, token, at_least=stored_before + events) - stored_before
        drain_s = await backlog_drained(hass, pipeline, events, entities)
        stored_all = await stored(url, token, at_least=stored_before + 2 * events) - stored_before
        dropped = pipeline.dropped_total
        await hass.async_stop()
    assert stored_now >= events and stored_all >= 2 * events and dropped == 0, (
        stored_now,
        stored_all,
        dropped,
    )
    addon_cpu = addon_end - addon_start
    return {
        **result,
        "addon_cpu_us_per_event": addon_cpu / events * 1e6,
        "addon_worker_start_cpu_s": worker_start_cpu,
        "backlog_drain_events_per_s": events / drain_s,
        "stored": stored_now,
    }


async def phase_spool_only(work: Path, events: int, entities: int) -> dict[str, Any]:
    """HomeIQ with its shipper stopped before the load: the listener, the encoding and
    the spool's disk writes, nothing sent. Set against the no-op listener, what HomeIQ
    costs HA's state-set rate with the add-on idle, not working on the machine's other
    core during the load."""
    with addon_process(work) as (url, token, _addon_pid):
        hass = await make_hass(work / "config")
        pipeline = await homeiq_started(hass, url, token, entities)
        await pipeline.shipper.async_stop()

        async def spooled() -> float:
            await pipeline.async_flush()  # every event encoded and written to the spool
            return 0.0

        result = await measure(hass, events, entities, spooled)
        backlog = pipeline.backlog_events
        await hass.async_stop()
    assert backlog == events, (backlog, events)
    return result


async def backlog_drained(hass: Any, pipeline: Any, events: int, entities: int) -> float:
    """Seconds the add-on takes to store a spooled backlog of `events` (what an outage
    leaves): the load is spooled with the shipper stopped, then it starts again."""
    await pipeline.shipper.async_stop()
    await set_states(hass, events, entities)
    await pipeline.async_flush()  # all in the spool
    assert pipeline.backlog_events == events, pipeline.backlog_events
    start = time.perf_counter()
    pipeline.shipper.start()
    await pipeline.spool.async_wait_empty()
    return time.perf_counter() - start


def worker_started(addon: Any, timeout: float = 60) -> float:
    """Wait until the add-on's decode worker has started and is idle (its CPU time stops
    growing); return the CPU seconds its start took."""
    import psutil

    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        try:
            cpu = sum(sum(child.cpu_times()[:2]) for child in addon.children())
        except psutil.NoSuchProcess:
            cpu = -1.0
        if cpu > 0 and cpu == last:
            return cpu
        last = cpu
        time.sleep(0.25)
    raise TimeoutError("the add-on's decode worker did not start")


def addon_cpu_seconds(addon: Any) -> float:
    """CPU seconds of the add-on process, its live children and the ended ones it waited
    for (the decode worker leaves when idle; asyncio waits for it)."""
    import psutil

    times = addon.cpu_times()
    total = float(times.user + times.system + times.children_user + times.children_system)
    for child in addon.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:  # ended meanwhile: counted once waited for
            continue
        total += child_times.user + child_times.system
    return total


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


async def phase_core_influxdb(work: Path, events: int, entities: int) -> dict[str, Any]:
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
        await set_states(hass, entities, entities, offset=-entities)
        poll = PollThread()
        await poll.until(lambda: vm_count(vm_url) >= entities, 0.05)

        async def all_points_held() -> float:
            poll.cpu_s = 0.0
            await poll.until(lambda: vm_count(vm_url) >= entities + events, 0.05)
            return poll.cpu_s

        result = await measure(hass, events, entities, all_points_held)
        errors = hass.data["influxdb"].write_errors
        await hass.async_stop()
        points = await asyncio.to_thread(vm_exported_points, vm_url)
    assert points >= entities + events, (points, events)
    return {**result, "write_errors": errors, "points": points}


VALUES = '{__name__=~".+_value"}'


def vm_count(vm_url: str) -> int:
    """Points victoria-metrics holds (searchable after a forced flush)."""
    with urllib.request.urlopen(f"{vm_url}/internal/force_flush", timeout=30):
        pass
    query = urllib.parse.urlencode({"query": f"sum(count_over_time({VALUES}[1d]))", "nocache": 1})
    with urllib.request.urlopen(f"{vm_url}/api/v1/query?{query}", timeout=30) as resp:
        result = json.load(resp)["data"]["result"]
    return int(result[0]["value"][1]) if result else 0


def vm_exported_points(vm_url: str) -> int:
    """Every point exported (the proof after the clock stopped)."""
    query = urllib.parse.urlencode({"match[]": VALUES})
    with urllib.request.urlopen(f"{vm_url}/api/v1/export?{query}", timeout=120) as resp:
        return sum(len(json.loads(line)["values"]) for line in resp if line.strip())


PHASES: dict[str, Callable[[Path, int, int], Coroutine[Any, Any, dict[str, Any]]]] = {
    "bare": phase_bare,
    "noop_listener": phase_noop_listener,
    "recorder": phase_recorder,
    "core_influxdb": phase_core_influxdb,
    "homeiq": phase_homeiq,
    # Not CONFIGS (no goal names them): `--only capture_listener,noop_listener`, and
    # `--only noop_listener,spool_only,homeiq`.
    "capture_listener": phase_capture_listener,
    "spool_only": phase_spool_only,
}


def checkout(ref: str) -> Path:
    """The integration as it is in commit `ref`, in a temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="bench-capture-ref-"))
    archive = subprocess.run(
        ["git", "archive", ref, "custom_components"], cwd=REPO, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def run_phase(config: str, args: argparse.Namespace, code_root: Path) -> dict[str, Any]:
    """Run one phase in a fresh interpreter so phases do not share memory or threads."""
    phase = config.partition("@")[0]
    out = subprocess.run(
        [
            *(sys.executable, __file__, "--phase", phase),
            *("--events", str(args.events), "--entities", str(args.entities)),
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            # The integration from `code_root` only (this checkout's, or REF's).
            "PYTHONPATH": f"{code_root}:{REPO / 'addon'}",
            "BENCH_CAPTURE_CODE_ROOT": str(code_root),
        },
    )
    if out.returncode:
        raise RuntimeError(f"phase {config} failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def homeiq_figures(rounds: list[dict[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    """One HomeIQ configuration's figures, each paired with the others of its round."""
    per_round: dict[str, list[float]] = {}
    add = per_round.setdefault
    for r in rounds:
        mine = r[name]
        add("addon_cpu_us_per_event", []).append(mine["addon_cpu_us_per_event"])
        add("backlog_drain_events_per_s", []).append(mine["backlog_drain_events_per_s"])
        if "addon_worker_start_cpu_s" in mine:  # not measured by commits before it
            add("addon_worker_start_cpu_s", []).append(mine["addon_worker_start_cpu_s"])
        add("whole_path_cpu_us_per_event", []).append(
            mine["ha_cpu_us_per_event"] + mine["addon_cpu_us_per_event"]
        )
        if noop := r.get("noop_listener"):
            add("ha_cpu_beyond_noop_us_per_event", []).append(
                mine["ha_cpu_us_per_event"] - noop["ha_cpu_us_per_event"]
            )
            add("rss_growth_over_noop_mb", []).append(mine["rss_growth_mb"] - noop["rss_growth_mb"])
            add("loop_ratio_vs_noop_listener", []).append(
                mine["set_events_per_s"] / noop["set_events_per_s"]
            )
        if influx := r.get("core_influxdb"):
            add("ratio_vs_core_influxdb", []).append(
                mine["end_to_end_events_per_s"] / influx["end_to_end_events_per_s"]
            )
    return {key: spread(values, 3 if "ratio" in key else 2) for key, values in per_round.items()}


def summarize(rounds: list[dict[str, dict[str, Any]]], configs: list[str]) -> dict[str, Any]:
    """Medians with spread per configuration, and the ratios paired within each round."""

    def each(config: str, key: str) -> list[float]:
        return [float(r[config][key]) for r in rounds if key in r.get(config, {})]

    out: dict[str, Any] = {}
    for key in (
        *("ha_cpu_us_per_event", "ha_loop_thread_us_per_event", "rss_growth_mb"),
        *("ha_gc_us_per_event", "ha_loop_thread_gc_us_per_event"),
    ):
        out[key] = {c: spread(each(c, key)) for c in configs if each(c, key)}
    # The loop thread's own work, whichever thread ran the collections (see the README).
    out["ha_loop_thread_without_gc_us_per_event"] = {
        c: spread(
            [
                r[c]["ha_loop_thread_us_per_event"] - r[c]["ha_loop_thread_gc_us_per_event"]
                for r in rounds
                if "ha_loop_thread_gc_us_per_event" in r.get(c, {})
            ]
        )
        for c in configs
        if each(c, "ha_loop_thread_gc_us_per_event")
    }
    # Each configuration's state-set rate over the no-op listener's, same round (for
    # homeiq, loop_ratio_vs_noop_listener).
    out["set_rate_over_noop_listener"] = {
        c: spread(
            [r[c]["set_events_per_s"] / r["noop_listener"]["set_events_per_s"] for r in rounds],
            3,
        )
        for c in configs
        if c != "noop_listener" and all("noop_listener" in r for r in rounds)
    }
    for name in (c for c in configs if c.startswith("homeiq")):
        figures = homeiq_figures(rounds, name)
        if name == "homeiq":
            out.update(figures)
        else:  # the same figures for the code of another commit, and this one's over it
            out["homeiq_at_" + name.partition("@")[2]] = figures
            if "homeiq" in configs:
                out["homeiq_over_" + name.partition("@")[2]] = {
                    key: spread([r["homeiq"][key] / r[name][key] for r in rounds], 3)
                    for key in (
                        *("ha_cpu_us_per_event", "ha_loop_thread_us_per_event"),
                        *("end_to_end_events_per_s", "backlog_drain_events_per_s"),
                    )
                    if all(key in r["homeiq"] and key in r[name] for r in rounds)
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--only", help="comma-separated configurations (does not write)")
    parser.add_argument("--compare", metavar="REF", help="also run homeiq as in commit REF")
    parser.add_argument("--no-write", action="store_true")
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

    configs = args.only.split(",") if args.only else list(CONFIGS)
    code_roots = dict.fromkeys(configs, REPO)
    ref_root = None
    if args.compare:
        ref_root = checkout(args.compare)
        configs.append(f"homeiq@{args.compare}")
        code_roots[configs[-1]] = ref_root
    load_start = os.getloadavg()
    started = datetime.now(UTC)
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        for n in range(args.rounds):
            order = configs[n % len(configs) :] + configs[: n % len(configs)]
            this_round = {}
            for config in order:
                this_round[config] = run_phase(config, args, code_roots[config])
                print(f"round {n + 1} {config}: {json.dumps(this_round[config])}", file=sys.stderr)
            rounds.append(this_round)
    finally:
        if ref_root is not None:
            shutil.rmtree(ref_root, ignore_errors=True)
    result = {
        **summarize(rounds, configs),
        "goals": GOALS,
        "rounds": rounds,
        "load": {"events": args.events, "entities": args.entities, "chunk": CHUNK},
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "homeassistant": ha_version(),
        },
        "date": started.isoformat(timespec="seconds"),
        "command": "PYTHONPATH=.:addon .venv/bin/python benchmarks/bench_capture.py "
        + " ".join(sys.argv[1:]),
        "compared_with": args.compare,
    }
    if not (args.only or args.no_write):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def ha_version() -> str:
    from homeassistant.const import __version__

    return __version__


if __name__ == "__main__":
    main()
