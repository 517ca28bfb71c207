"""Real InfluxDB-compatible engines for the mirror's tests: Debian's victoria-metrics.

Each engine is a child process on a free loopback port with its own directory, waited
for until its /health answers, stopped with SIGTERM (or SIGKILL, the crash path):

- ``VictoriaMetrics``: one single-node server, restartable on the same port and data.
- ``VmAuth``: vmauth in front of a server, letting one bearer token through.
- ``VmAgent``: vmagent writing to several servers, sharded by entity_id or replicated.

What victoria-metrics 1.79.5 (Debian's package) does with InfluxDB line protocol, as
observed here (tests/mirror rely on each point):

- ``POST /api/v2/write`` (also ``/write``, ``/influx/api/v2/write``) takes line protocol
  and answers 204; ``org`` and ``bucket`` are ignored. ``precision`` (ns, us, ms, s) is
  honoured. Timestamps are kept in milliseconds (``-influxTrimTimestamp=1ms``): a
  microsecond timestamp loses its last three digits.
- A field becomes the series ``{measurement}_{field}`` (``-influxMeasurementFieldSeparator``
  ``_``), the tags its labels. Floats and integers keep their value, ``true``/``false``
  become 1/0, and a string field is stored as the number it spells ("1.5" → 1.5) or
  else as 0.
- It never refuses content: an unparseable line, a line over ``-influx.maxLineSize``
  (256 KiB), a string field with a raw newline (it splits lines at every newline, quotes
  or not), a timestamp older than ``-retentionPeriod`` (one month by default) or more
  than two days ahead: each is skipped with a line in its log, and the write still
  answers 204. The only 400 seen here was for a body it could not read (bad gzip).
- Tag values: ``\\,`` ``\\=`` ``\\ `` and ``\\\\`` are unescaped; ``\\n`` stays as the two
  characters.
- A sample written twice (same series, same millisecond) is stored twice: /api/v1/export
  and ``count_over_time`` show both. With ``-dedup.minScrapeInterval=1ms`` only one
  sample per series and millisecond is kept (by export and by queries alike). That flag
  is what makes a retried write count once; it is set on every server these tests start
  (``DEDUP``); on a cluster it goes on vmselect and vmstorage. Which of two different
  samples in one millisecond survives is not defined: across separate writes it was the
  later one in every run here, within one request either.
- An acknowledgement is not durability: SIGKILLed 5 s after a write was answered 204
  (even after /internal/force_flush), the server came back without it; 12 s after, it
  was kept. SIGTERM keeps everything. (homeiq_addon/mirror/replay.py writes the last
  minute again after an outage for this reason.)
- ``/internal/force_flush`` makes what was written readable at once; until then the
  last second of writes may not be exported yet.
- vmauth 1.79.5 answers a request without Authorization 401, and an unknown bearer
  token **400** ("cannot find the provided auth token ... in config", echoing the
  token). It takes influxdb-client's ``Authorization: Token <t>`` as well as
  ``Bearer <t>``.
- vmagent 1.79.5 takes the same ``/api/v2/write`` and forwards to every
  ``-remoteWrite.url``; it has no ``-remoteWrite.shardByURL`` (later releases do), so
  sharding is a per-URL relabelling: ``hashmod`` of entity_id, ``keep`` one residue. It
  queues on disk (``-remoteWrite.tmpDataPath``) while a node is down and sends on when
  it is back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import json
from pathlib import Path
import signal
import socket
import subprocess
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

from tests.conftest import free_port

# A retried write counts once (see above); history of any age is kept.
DEDUP = "-dedup.minScrapeInterval=1ms"
RETENTION = "-retentionPeriod=100y"


def http(
    method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """A plain HTTP request: (status, body), errors included."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting: {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses every connection while the block runs: bound, never
    listening, so no other process on the machine can take it (a port ``free_port``
    found free may serve someone else's server a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


class EngineProcess:
    """A child process serving HTTP on a free loopback port, with /health."""

    name = "engine"

    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = work / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait for /health. Another run may take the port between the probe
        and the bind: then again on a new one (the first start only; a restart keeps its
        port, which clients know)."""
        for _ in range(3):
            if self._start(timeout):
                return
            self.port = free_port()
        raise RuntimeError(f"{self.name} could not bind a port:\n{self.log()}")

    def restart(self, timeout: float = 30.0) -> None:
        if not self._start(timeout):
            raise RuntimeError(f"{self.name} could not bind its port again:\n{self.log()}")

    def _start(self, timeout: float) -> bool:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.work
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if b"address already in use" in self.log_path.read_bytes()[log_start:]:
                    return False
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError):
                if http("GET", f"{self.url}/health")[0] == 200:
                    return True
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM: the engine flushes what it holds and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


@dataclass(frozen=True, slots=True)
class Series:
    """One exported series: its name, labels and samples (milliseconds, value)."""

    name: str
    labels: dict[str, str]
    samples: list[tuple[int, float]]


class VictoriaMetrics(EngineProcess):
    name = "victoria-metrics"

    def __init__(self, work: Path, *extra: str) -> None:
        super().__init__(work)
        self.extra = list(extra)

    def args(self) -> list[str]:
        return [
            "victoria-metrics",
            f"-storageDataPath={self.work / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            RETENTION,
            DEDUP,
            *self.extra,
        ]

    def flush(self) -> None:
        status, _ = http("GET", f"{self.url}/internal/force_flush")
        assert status == 200, status

    def export(self, match: str = '{__name__=~"homeiq.*"}') -> list[Series]:
        """Every sample of the matching series, after a flush; /api/v1/export answers
        JSON lines of {"metric": {...}, "values": [...], "timestamps": [...]}."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, raw = http("POST", f"{self.url}/api/v1/export", query.encode(),
                           {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert status == 200, (status, raw[:300])
        found = []
        for line in raw.splitlines():
            item: dict[str, Any] = json.loads(line)
            labels = dict(item["metric"])
            name = labels.pop("__name__")
            found.append(
                Series(name, labels, list(zip(item["timestamps"], item["values"], strict=True)))
            )
        return sorted(found, key=lambda s: (s.name, sorted(s.labels.items())))


def samples(*servers: VictoriaMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]]:
    """(name, sorted labels) → [(ms, value), ...] over all servers together: a sample
    stored on two of them appears twice."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]] = {}
    for server in servers:
        for series in server.export():
            key = (series.name, tuple(sorted(series.labels.items())))
            found.setdefault(key, []).extend(series.samples)
    for values in found.values():
        values.sort()
    return found


class VmAuth(EngineProcess):
    """vmauth letting requests with ``Authorization: Bearer <token>`` through."""

    name = "vmauth"

    def __init__(self, work: Path, backend: str, token: str) -> None:
        super().__init__(work)
        self.config = work / "auth.yml"
        self.config.write_text(f'users:\n- bearer_token: "{token}"\n  url_prefix: "{backend}"\n')
        self.config.chmod(0o600)

    def args(self) -> list[str]:
        return ["vmauth", f"-auth.config={self.config}", f"-httpListenAddr=127.0.0.1:{self.port}"]


class VmAgent(EngineProcess):
    """vmagent forwarding to every node (``shard=False``), or to one node per entity_id
    (``shard=True``: a hashmod relabelling per remote-write URL)."""

    name = "vmagent"

    def __init__(self, work: Path, nodes: list[str], *, shard: bool) -> None:
        super().__init__(work)
        self.nodes = nodes
        self.shard = shard

    def args(self) -> list[str]:
        args = [
            "vmagent",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-remoteWrite.tmpDataPath={self.work / 'queue'}",
            "-remoteWrite.flushInterval=100ms",
        ]
        for index, node in enumerate(self.nodes):
            args.append(f"-remoteWrite.url={node}/api/v1/write")
            if self.shard:
                rules = self.work / f"shard-{index}.yml"
                rules.write_text(
                    "- action: hashmod\n  source_labels: [entity_id]\n"
                    f"  modulus: {len(self.nodes)}\n  target_label: __shard\n"
                    f'- action: keep\n  source_labels: [__shard]\n  regex: "{index}"\n'
                )
                args.append(f"-remoteWrite.urlRelabelConfig={rules}")
        return args


@contextlib.contextmanager
def running(*engines: EngineProcess) -> Iterator[None]:
    """Start the engines in order; stop them in reverse, whatever happens."""
    started: list[EngineProcess] = []
    try:
        for engine in engines:
            engine.start()
            started.append(engine)
        yield
    finally:
        for engine in reversed(started):
            engine.stop()
            engine.kill()
