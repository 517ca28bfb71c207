"""Shared fixtures: the real add-on process on 127.0.0.1 with a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import logging
import os
from pathlib import Path
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any
import urllib.error
import urllib.request

import pytest

REPO = Path(__file__).resolve().parent.parent

# How Home Assistant reports a deprecated use (helpers/frame.py's report_usage, and
# helpers/deprecation.py): for a custom integration only a logged warning, until the
# release where it stops working.
DEPRECATION_REPORT = re.compile(
    r"^Detected (that custom integration|code that) |^The deprecated .+ was .+ from homeiq\b"
)


@pytest.fixture(autouse=True, scope="session")
def addon_coverage_in_subprocesses() -> Iterator[None]:
    """Under scripts/test (HOMEIQ_ADDON_COVERAGE=1) every Python process the tests start
    measures the add-on with tests/addon.coveragerc: the add-on, its decode worker, the
    one-shot commands. pytest-cov's own subprocess start (COV_CORE_*) is switched off:
    it would measure with the integration's settings, a second time."""
    for key in [key for key in os.environ if key.startswith("COV_CORE_")]:
        del os.environ[key]
    if os.environ.get("HOMEIQ_ADDON_COVERAGE") != "1":
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COVERAGE_PROCESS_START", str(REPO / "tests" / "addon.coveragerc"))
        patch.setenv("COVERAGE_FILE", str(REPO / ".coverage-addon"))
        patch.setenv("PYTHONPATH", pythonpath(REPO / "tests" / "coverage_startup"))
        yield


def pythonpath(*dirs: Path) -> str:
    """`dirs` first, then the tests' own PYTHONPATH (which carries the coverage start-up)."""
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return os.pathsep.join([*map(str, dirs), *inherited])


@pytest.fixture(autouse=True)
def no_deprecation_reports(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Home Assistant's reports of deprecated use fail the test that caused them, so a
    deprecation is caught the day a release brings it, not the day it breaks."""
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    reports = [
        record.getMessage()
        for record in records
        if record.levelno >= logging.WARNING and DEPRECATION_REPORT.search(record.getMessage())
    ]
    assert not reports, "Home Assistant reported deprecated use:\n" + "\n".join(reports)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The add-on runs from the environment made of addon/requirements.txt, as it ships
# (scripts/test points HOMEIQ_ADDON_PYTHON at .venv-addon's Python); else from this one.
ADDON_PYTHON = os.environ.get("HOMEIQ_ADDON_PYTHON") or sys.executable


class PortTaken(Exception):
    """The add-on could not bind its port."""


class AddonProcess:
    """``python -m homeiq_addon`` as a child process, restartable on the same data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        dev: bool = True,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.ingress_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ingress_url = f"http://127.0.0.1:{self.ingress_port}"
        self.dev = dev
        self.extra_args = extra_args or []
        self.env = env or {}
        self.log_path = data_dir.parent / f"{data_dir.name}-addon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart) the process and wait until the minimal health answers.

        Other test runs on the machine may take a free port between our probe and the
        add-on's bind; then it starts again on new ports (url/ingress_url change).
        """
        for _ in range(3):
            try:
                self._start(timeout)
                return
            except PortTaken:
                self.port, self.ingress_port = free_port(), free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.ingress_url = f"http://127.0.0.1:{self.ingress_port}"
        self._start(timeout)

    def _start(self, timeout: float) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        args = [
            ADDON_PYTHON,
            "-m",
            "homeiq_addon",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--ingress-port",
            str(self.ingress_port),
            "--log-level",
            "debug",
            *(["--dev"] if self.dev else []),
            *self.extra_args,
        ]
        env = {**os.environ, "PYTHONPATH": pythonpath(REPO / "addon"), **self.env}
        if "SUPERVISOR_TOKEN" not in self.env:
            env.pop("SUPERVISOR_TOKEN", None)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if b"address already in use" in self.log_path.read_bytes()[log_start:]:
                    raise PortTaken
                raise RuntimeError(f"add-on exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/api/v1/health?minimal=1", timeout=2
                ) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"add-on did not become healthy:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait: the clean shutdown path."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash path (no shutdown code runs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def row_count(self) -> int:
        """Events stored, read straight from the SQLite file (read-only)."""
        count: int = self.query("SELECT COUNT(*) FROM events")[0][0]
        return count

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of `sql`, read straight from the SQLite file (read-only)."""
        conn = sqlite3.connect(f"file:{self.data_dir / 'homeiq.db'}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@contextlib.contextmanager
def started[P: AddonProcess](server: P) -> Iterator[P]:
    """``server`` started on its new data dir, stopped after."""
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def running_addon(data_dir: Path, **kwargs: Any) -> contextlib.AbstractContextManager[AddonProcess]:
    """An add-on started on a new data dir (``AddonProcess`` arguments), stopped after."""
    return started(AddonProcess(data_dir, **kwargs))


@pytest.fixture
def addon_server(tmp_path: Path, socket_enabled: None) -> Iterator[AddonProcess]:
    """A running add-on on free loopback ports with its own data dir (--dev mode).

    ``socket_enabled`` lifts pytest-socket's block; its host rule still allows 127.0.0.1 only.
    """
    with running_addon(tmp_path / "data") as server:
        yield server
