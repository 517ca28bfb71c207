"""Headless chromium driven over the DevTools protocol with aiohttp alone, and a tiny
reverse proxy that plays the Supervisor's ingress: it serves ``/api/hassio_ingress/<token>/...``
by forwarding to the add-on's ingress port with ``X-Ingress-Path`` set (WebSocket included).

Used by the panel tests and by scripts/screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from pathlib import Path
import shutil
import subprocess
import tempfile
from typing import Any

import aiohttp
from aiohttp import web
import orjson

from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
PREFIX = "/api/hassio_ingress/Xk9_tokenABC"


async def ingress_proxy(upstream: str) -> tuple[web.AppRunner, str]:
    """Forward PREFIX/... to the add-on's ingress port as the Supervisor does."""
    session = aiohttp.ClientSession(auto_decompress=False)
    sockets: set[web.WebSocketResponse] = set()

    async def forward(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        url = f"{upstream}/{tail}" + (f"?{request.query_string}" if request.query_string else "")
        headers = {"X-Ingress-Path": PREFIX}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _forward_ws(
                request, session, url.replace("http", "ws", 1), headers, sockets
            )
        for name in ("Content-Type", "Accept"):
            if name in request.headers:
                headers[name] = request.headers[name]
        async with session.request(
            request.method, url, data=await request.read(), headers=headers
        ) as resp:
            body = await resp.read()
            keep = {k: v for k, v in resp.headers.items() if k in ("Content-Type",)}
            return web.Response(status=resp.status, body=body, headers=keep)

    async def close(_: web.Application) -> None:
        await session.close()

    async def shutdown(_: web.Application) -> None:
        # Open WebSockets would hold the runner's cleanup for its whole timeout.
        for ws in list(sockets):
            await ws.close()

    app = web.Application()
    app.router.add_route("*", PREFIX + "/{tail:.*}", forward)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(close)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def _forward_ws(
    request: web.Request,
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    sockets: set[web.WebSocketResponse],
) -> web.WebSocketResponse:
    client = web.WebSocketResponse()
    await client.prepare(request)
    sockets.add(client)
    async with session.ws_connect(url, headers=headers) as upstream:

        async def pump(src: Any, dst: Any) -> None:
            async for msg in src:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                await dst.send_str(msg.data)

        tasks = [asyncio.create_task(pump(upstream, client)),
                 asyncio.create_task(pump(client, upstream))]  # fmt: skip
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
    sockets.discard(client)
    return client


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Browser:
    """Headless chromium and one page, over the DevTools protocol."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="homeiq-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1200,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = self.profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        self.session = aiohttp.ClientSession()
        for _ in range(100):
            async with self.session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t["type"] == "page"]
            if pages:
                break
            await asyncio.sleep(0.05)
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.ws is not None
        msg_id = next(self._ids)
        await self.ws.send_str(
            orjson.dumps({"id": msg_id, "method": method, "params": params}).decode()
        )
        while True:
            reply = orjson.loads((await self.ws.receive(timeout=30)).data)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    async def js(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 15.0) -> Any:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            value = await self.js(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": size["height"], "scale": 1}  # fmt: skip
        shot = await self.send("Page.captureScreenshot", **params)
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            if self.proc.poll() is None:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
