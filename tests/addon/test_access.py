"""Ingress answers only the Supervisor (and loopback in --dev); the token file is private."""

from __future__ import annotations

from pathlib import Path
import stat

import aiohttp

from tests.addon.factory import batch
from tests.addon.test_ingest import post
from tests.conftest import AddonProcess


async def test_ingress_without_token_in_dev_mode(addon_server: AddonProcess) -> None:
    status, answer = await post(addon_server, batch(), headers={}, url=addon_server.ingress_url)
    assert status == 200
    assert answer["accepted"] == 3


async def test_ingress_refuses_others(tmp_path: Path, socket_enabled: None) -> None:
    server = AddonProcess(tmp_path / "data", dev=False)
    server.data_dir.mkdir()
    server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.ingress_url}/api/v1/health", headers=server.headers) as resp,
        ):
            assert resp.status == 403
            assert (await resp.json())["error"] == "forbidden"
    finally:
        server.stop()


async def test_token_file_is_private_and_stable(addon_server: AddonProcess) -> None:
    token_file = addon_server.data_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = addon_server.token
    assert len(token) >= 40
    addon_server.stop()
    addon_server.start()
    assert addon_server.token == token


async def test_unknown_route_is_a_json_404(addon_server: AddonProcess) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{addon_server.url}/api/v1/nope", headers=addon_server.headers) as resp,
    ):
        assert resp.status == 404
        assert await resp.json() == {
            "error": "not_found",
            "message": "GET /api/v1/nope: Not Found",
        }
