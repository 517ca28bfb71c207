"""Supervisor discovery, against a real local HTTP server standing in for the Supervisor."""

from __future__ import annotations

import asyncio
from pathlib import Path
import socket
from typing import Any

from aiohttp import web

from tests.conftest import AddonProcess, free_port


async def _fake_supervisor(fail_first: int) -> tuple[web.AppRunner, list[dict[str, Any]], int]:
    received: list[dict[str, Any]] = []

    async def discovery(request: web.Request) -> web.Response:
        received.append(
            {"auth": request.headers.get("Authorization"), "body": await request.json()}
        )
        if len(received) <= fail_first:
            return web.json_response({"result": "error", "message": "not ready"}, status=503)
        return web.json_response({"result": "ok", "data": {"uuid": "abc123"}})

    app = web.Application()
    app.router.add_post("/discovery", discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, received, port


async def test_announces_to_supervisor_with_retry(tmp_path: Path, socket_enabled: None) -> None:
    runner, received, port = await _fake_supervisor(fail_first=1)
    server = AddonProcess(
        tmp_path / "data",
        env={
            "SUPERVISOR_TOKEN": "sv-secret",
            "SUPERVISOR_URL": f"http://127.0.0.1:{port}",
            "HOMEIQ_HOST": "local-homeiq",
        },
    )
    server.data_dir.mkdir()
    server.start()
    try:
        for _ in range(100):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(received) == 2  # refused once, then accepted after the backoff
        for call in received:
            assert call["auth"] == "Bearer sv-secret"
            assert call["body"] == {
                "service": "homeiq",
                "config": {"host": "local-homeiq", "port": server.port, "token": server.token},
            }
        await asyncio.sleep(1.5)
        assert len(received) == 2  # no more once accepted
        assert "sv-secret" not in server.log()
        assert server.token not in server.log()
    finally:
        server.stop()
        await runner.cleanup()


async def test_no_supervisor_no_announcement(tmp_path: Path, socket_enabled: None) -> None:
    runner, received, port = await _fake_supervisor(fail_first=0)
    server = AddonProcess(tmp_path / "data", env={"SUPERVISOR_URL": f"http://127.0.0.1:{port}"})
    server.data_dir.mkdir()
    server.start()
    try:
        await asyncio.sleep(1.0)
        assert received == []
        assert socket.gethostname()  # the default host when HOMEIQ_HOST is unset
    finally:
        server.stop()
        await runner.cleanup()
