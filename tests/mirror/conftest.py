"""Engines for the mirror's tests, each on free loopback ports, stopped after the test.

``socket_enabled`` lifts pytest-socket's block where it is on; its host rule still
allows 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mirror.engines import VictoriaMetrics, VmAgent, VmAuth, running

TOKEN = "mirror-test-token"  # vmauth's configured token; a made-up value


@pytest.fixture
def victoria(tmp_path: Path, socket_enabled: None) -> Iterator[VictoriaMetrics]:
    """One victoria-metrics server."""
    server = VictoriaMetrics(tmp_path / "vm")
    with running(server):
        yield server


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
