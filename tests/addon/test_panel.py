"""The ingress panel end to end in real headless chromium, below an ingress prefix.

A tiny aiohttp reverse proxy plays the Supervisor: it serves
``/api/hassio_ingress/<token>/...`` by forwarding to the add-on's ingress port with
``X-Ingress-Path`` set (WebSocket included). Chromium is driven over the DevTools
protocol with aiohttp alone. A failing test leaves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
import contextlib
from datetime import timedelta
import itertools
from pathlib import Path
import shutil
import subprocess
import tempfile
from typing import Any

import aiohttp
from aiohttp import web
import orjson
import pytest

from tests.addon.retention_data import T0, Api, event
from tests.conftest import REPO, AddonProcess, free_port

CHROMIUM = "/usr/bin/chromium"
PREFIX = "/api/hassio_ingress/Xk9_tokenABC"
ARTIFACTS = REPO / "tests" / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


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

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
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


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    b = Browser()
    await b.start()
    failed_before = request.session.testsfailed
    try:
        yield b
    finally:
        # The call's report is logged before teardown, so a failure has been counted.
        if request.session.testsfailed > failed_before:
            with contextlib.suppress(Exception):
                await b.screenshot(ARTIFACTS / f"{request.node.name}.png")
        await b.close()


def click(selector: str) -> str:
    return f"document.querySelector({selector!r}).click(), true"


def fill(values: dict[str, str]) -> str:
    sets = "".join(f"document.querySelector({k!r}).value = {v!r};" for k, v in values.items())
    return sets + "true"


async def test_panel_under_ingress_prefix(addon_server: AddonProcess, browser: Browser) -> None:
    async with aiohttp.ClientSession() as session:
        events = [
            event(T0 + timedelta(minutes=i), "sensor.old_power", str(i), numeric=float(i))
            for i in range(300)
        ]
        for i, ev in enumerate(events):
            ev["attributes"] = {"phase": i % 3}
        await Api(addon_server, session).ingest(events)
    runner, proxy = await ingress_proxy(addon_server.ingress_url)
    try:
        await browser.send("Page.navigate", url=f"{proxy}{PREFIX}/")
        await browser.wait_for("document.body && document.body.dataset.ready === '1'")
        assert await browser.js("location.pathname") == f"{PREFIX}/"
        assert await browser.js("document.querySelector('base').href") == f"{proxy}{PREFIX}/"
        await browser.wait_for("document.querySelector('[data-policy=default]') !== null")
        status = await browser.wait_for("document.querySelector('#status').dataset.status")
        assert status in ("healthy", "degraded")
        await browser.wait_for("document.querySelector('[data-tier=raw]') !== null")

        # A bad glob is refused with the server's message, next to the form.
        await browser.js(fill({"#p-name": "power", "#p-match-type": "entity",
                               "#p-pattern": "sensor.[power", "#p-raw": "7"}))  # fmt: skip
        await browser.js(click("#policy-save"))
        message = await browser.wait_for("document.querySelector('#policy-error').textContent")
        assert message.startswith("pattern:")
        # Fixed, it is saved and listed.
        await browser.js(fill({"#p-pattern": "sensor.*_power"}))
        await browser.js(click("#policy-save"))
        await browser.wait_for("document.querySelector('[data-policy=power]') !== null")
        row = await browser.js("document.querySelector('[data-policy=power]').innerText")
        assert "entity: sensor.*_power" in row
        assert "7 d" in row

        # Dry run preview: nothing deleted, the report lists the policies.
        await browser.js(click("#run-dry"))
        summary = await browser.wait_for(
            "document.querySelector('#run-summary[data-dry-run=true]')?.textContent"
        )
        assert summary.startswith("Would delete 300 raw events")
        assert addon_server.row_count() == 300

        # A backup is created and listed.
        await browser.js(click("#backup-create"))
        await browser.wait_for("document.querySelectorAll('#backups tbody tr').length === 1")
        name = await browser.js("document.querySelector('#backups tbody tr').dataset.backup")
        assert (addon_server.data_dir / "backups" / name).exists()

        # Restoring it takes a confirming second click and keeps the replaced data.
        await browser.js(click("#backups tbody tr button"))
        assert addon_server.row_count() == 300
        await browser.js(click("#backups tbody tr button"))
        message = await browser.wait_for(
            "document.querySelector('#backup-message').textContent.startsWith('Restored')"
            " && document.querySelector('#backup-message').textContent"
        )
        assert message.startswith(f"Restored {name}; the data it replaced is kept as homeiq-before")
        await browser.wait_for("document.querySelectorAll('#backups tbody tr').length === 2")

        # The real run deletes what the preview showed.
        await browser.js(click("#run-now"))
        summary = await browser.wait_for(
            "document.querySelector('#run-summary[data-dry-run=false]')?.textContent"
        )
        assert summary.startswith("Deleted 300 raw events")
        assert summary.endswith(", and 3 attribute sets no event uses any more.")
        assert addon_server.row_count() == 0

        # The live chart gets rate messages over the proxied WebSocket.
        await browser.wait_for("document.querySelector('#rate-now').textContent !== '\\u2013'")

        # HA's dark look follows the system setting.
        background = "getComputedStyle(document.body).backgroundColor"
        assert await browser.js(background) == "rgb(250, 250, 250)"
        dark = [{"name": "prefers-color-scheme", "value": "dark"}]
        await browser.send("Emulation.setEmulatedMedia", features=dark)
        assert await browser.js(background) == "rgb(17, 17, 17)"

        # Phone width: nothing sticks out sideways.
        await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                           deviceScaleFactor=2, mobile=True)  # fmt: skip
        await asyncio.sleep(0.2)
        assert await browser.js("document.documentElement.scrollWidth") <= 390
    finally:
        await runner.cleanup()


async def test_panel_html_base_and_ingress_guard(tmp_path: Path, socket_enabled: None) -> None:
    server = AddonProcess(tmp_path / "data", dev=False)
    server.data_dir.mkdir()
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            # Without --dev the ingress port answers only the Supervisor's address.
            async with session.get(f"{server.ingress_url}/") as resp:
                assert resp.status == 403
            async with session.get(f"{server.url}/", headers=server.headers) as resp:
                assert resp.status == 200
                html = await resp.text()
            assert "<base" not in html
            assert 'href="style.css"' in html  # relative, so it works below any prefix
            headers = {**server.headers, "X-Ingress-Path": PREFIX}
            async with session.get(f"{server.url}/", headers=headers) as resp:
                assert f'<base href="{PREFIX}/">' in await resp.text()
            headers["X-Ingress-Path"] = '"><script>alert(1)</script>'
            async with session.get(f"{server.url}/", headers=headers) as resp:
                assert "<script>alert" not in await resp.text()
    finally:
        server.stop()
