"""Engines for the mirror's tests, each on free loopback ports, stopped after the test.

``socket_enabled`` lifts pytest-socket's block where it is on; its host rule still
allows 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from aiohttp import web
import pytest

from tests.conftest import free_port
from tests.mirror.engines import VictoriaMetrics, VmAgent, VmAuth, refusing_port, running

TOKEN = "mirror-test-token"  # vmauth's configured token; a made-up value


@pytest.fixture
def victoria(tmp_path: Path, socket_enabled: None) -> Iterator[VictoriaMetrics]:
    """One victoria-metrics server."""
    server = VictoriaMetrics(tmp_path / "vm")
    with running(server):
        yield server


@pytest.fixture
def nowhere(socket_enabled: None) -> Iterator[int]:
    """A loopback port nothing answers on for the whole test."""
    with refusing_port() as port:
        yield port


@pytest.fixture
def guarded(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[VmAuth]:
    """vmauth in front of ``victoria``, taking the bearer token ``TOKEN``."""
    proxy = VmAuth(tmp_path / "vmauth", victoria.url, TOKEN)
    with running(proxy):
        yield proxy


@pytest.fixture
def two_nodes(tmp_path: Path, socket_enabled: None) -> Iterator[list[VictoriaMetrics]]:
    nodes = [VictoriaMetrics(tmp_path / f"node-{n}") for n in range(2)]
    with running(*nodes):
        yield nodes


@pytest.fixture
def sharding_agent(tmp_path: Path, two_nodes: list[VictoriaMetrics]) -> Iterator[VmAgent]:
    """vmagent sending each entity's series to one of ``two_nodes``."""
    agent = VmAgent(tmp_path / "vmagent", [node.url for node in two_nodes], shard=True)
    with running(agent):
        yield agent


type Answer = Callable[[bytes], web.Response]


@pytest.fixture
async def influx_answers(
    socket_enabled: None,
) -> AsyncIterator[tuple[str, list[Answer], list[str]]]:
    """(url, answers, taken): /api/v2/write answers with ``answers[-1]`` and keeps the
    lines of every 204 in ``taken``. InfluxDB 2's answers (a 400 for a point, a 429
    with Retry-After), which victoria-metrics never gives."""
    answers: list[Answer] = []
    taken: list[str] = []

    async def write(request: web.Request) -> web.Response:
        raw = await request.read()
        response = answers[-1](raw)
        if response.status == 204:
            taken.extend(raw.decode().split("\n"))
        return response

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", answers, taken
    finally:
        await runner.cleanup()


def influx_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)
