"""Regenerate docs/images/*.png: the HomeIQ dashboard and the app's panel (see scripts/screenshots).

Everything runs on spare loopback ports in a throw-away directory: scripts/develop (the
add-on service and Home Assistant with demo entities), Home Assistant's onboarding through
its API (a user, a token), docs/dashboard.yaml stored as a dashboard over the WebSocket
API, and headless chromium driven over the DevTools protocol (tests/browser.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
from datetime import UTC, datetime, timedelta
import itertools
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from homeassistant.util.yaml import load_yaml  # noqa: E402

from tests.browser import Browser  # noqa: E402
from tests.conftest import free_port  # noqa: E402

IMAGES = REPO / "docs" / "images"
DASHBOARD_URL = "homeiq-dashboard"
USER = {"name": "Demo", "username": "demo", "password": "demo-screenshots-1", "language": "en"}
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
WAIT_S = int(os.environ.get("HOMEIQ_SHOT_WAIT", "300"))
MAX_BYTES = 300_000


def log(message: str) -> None:
    print(f"screenshots: {message}", flush=True)


@contextlib.contextmanager
def develop(dev_dir: Path, ports: dict[str, int]) -> Iterator[subprocess.Popen[bytes]]:
    """scripts/develop in its own process group, stopped (all of it) on the way out."""
    env = {
        **os.environ,
        "HOMEIQ_DEV_DIR": str(dev_dir),
        "HOMEIQ_HA_PORT": str(ports["ha"]),
        "HOMEIQ_API_PORT": str(ports["api"]),
        "HOMEIQ_INGRESS_PORT": str(ports["ingress"]),
    }
    with (dev_dir.parent / "develop.log").open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own script
            [str(REPO / "scripts" / "develop")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def wait_for_http(session: aiohttp.ClientSession, url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status < 500:
                    return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {seconds} s")
        await asyncio.sleep(1)


async def onboard(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Create the owner, log in, and finish the remaining onboarding steps."""
    client_id = f"{base}/"
    async with session.post(
        f"{base}/api/onboarding/users", json={"client_id": client_id, **USER}
    ) as resp:
        resp.raise_for_status()
        code = (await resp.json())["auth_code"]
    async with session.post(
        f"{base}/auth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
    ) as resp:
        resp.raise_for_status()
        tokens: dict[str, Any] = await resp.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    steps = {
        "core_config": {},
        "analytics": {},
        "integration": {"client_id": client_id, "redirect_uri": f"{base}/?auth_callback=1"},
    }
    for step, body in steps.items():
        async with session.post(
            f"{base}/api/onboarding/{step}", json=body, headers=headers
        ) as resp:
            resp.raise_for_status()
    return tokens


async def store_dashboard(session: aiohttp.ClientSession, base: str, access: str) -> None:
    """docs/dashboard.yaml as a storage dashboard, as a user pasting it would make it."""
    config = load_yaml(str(REPO / "docs" / "dashboard.yaml"))
    ids = itertools.count(1)
    async with session.ws_connect(f"{base.replace('http', 'ws', 1)}/api/websocket") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": access})
        assert (await ws.receive_json())["type"] == "auth_ok"

        async def call(**message: Any) -> Any:
            msg_id = next(ids)
            await ws.send_json({"id": msg_id, **message})
            while (reply := await ws.receive_json()).get("id") != msg_id:
                pass
            assert reply["success"], reply
            return reply.get("result")

        await call(
            type="lovelace/dashboards/create",
            url_path=DASHBOARD_URL,
            title="HomeIQ",
            icon="mdi:chart-timeline-variant",
            show_in_sidebar=True,
            require_admin=False,
            mode="storage",
        )
        await call(type="lovelace/config/save", url_path=DASHBOARD_URL, config=config)


async def fill_panel(session: aiohttp.ClientSession, api: str, token: str) -> None:
    """The hour before the demo started, as the demo itself fires it, a policy, a backup."""
    headers = {"Authorization": f"Bearer {token}"}
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for tick in range(720):  # the demo automation runs every 5 s
        at = now - timedelta(hours=1) + timedelta(seconds=5 * tick)
        for k, (event_type, entity_id) in enumerate(
            (
                ("automation_triggered", None),
                ("call_service", None),
                ("state_changed", "input_number.demo_temperature"),
                ("call_service", None),
                ("state_changed", "input_boolean.demo_light"),
            )
        ):
            event: dict[str, Any] = {
                "time_fired": (at + timedelta(milliseconds=k)).isoformat(),
                "event_type": event_type,
                "origin": "LOCAL",
                "context_id": f"01JD{len(events):022d}",
            }
            if entity_id is not None:
                number = entity_id.startswith("input_number")
                state = str(15 + tick % 150 / 10) if number else ("on" if tick % 2 else "off")
                event.update(entity_id=entity_id, domain=entity_id.split(".")[0], state=state)
            events.append(event)
    source = {"instance_id": "screenshots", "integration_version": "0.1.0"}
    for start in range(0, len(events), 1000):
        body = {
            "batch_id": f"backfill-{start}",
            "source": source,
            "events": events[start : start + 1000],
        }
        async with session.post(f"{api}/api/v1/ingest", json=body, headers=headers) as resp:
            resp.raise_for_status()
    policy = {"name": "power", "match_type": "entity", "pattern": "sensor.*_power", "raw_days": 7}
    async with session.post(
        f"{api}/api/v1/retention/policies", json=policy, headers=headers
    ) as resp:
        resp.raise_for_status()
    async with session.post(f"{api}/api/v1/backups", headers=headers) as resp:
        resp.raise_for_status()


def shrink(path: Path) -> None:
    """A 256-colour palette: a few times smaller, and screenshots lose nothing visible."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    size = path.stat().st_size
    log(f"{path.relative_to(REPO)}: {size // 1000} kB")
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is larger than {MAX_BYTES // 1000} kB")


async def shoot(
    browser: Browser, name: str, metrics: dict[str, Any], dark: bool, *, full: bool
) -> None:
    scheme = [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]
    await browser.send("Emulation.setEmulatedMedia", features=scheme)
    await browser.send("Emulation.setDeviceMetricsOverride", **metrics)
    # A full-page shot is as wide as the page: no scrollbar taking part of it.
    await browser.send("Emulation.setScrollbarsHidden", hidden=True)
    await asyncio.sleep(3)  # re-layout, charts redraw
    path = IMAGES / f"{name}.png"
    await browser.screenshot(path, full_page=full)
    shrink(path)


async def panel_shots(browser: Browser, panel: str) -> None:
    await browser.send("Emulation.setDeviceMetricsOverride", **DESKTOP)
    await browser.send("Page.navigate", url=f"{panel}/")
    await browser.wait_for("document.body && document.body.dataset.ready === '1'", 30)
    await browser.wait_for("document.querySelector('#rate-now').textContent !== '\\u2013'", 30)
    for name, metrics, dark in (
        ("panel-light", DESKTOP, False),
        ("panel-dark", DESKTOP, True),
        ("panel-phone", PHONE, False),
    ):
        await shoot(browser, name, metrics, dark, full=True)


async def dashboard_shots(browser: Browser, base: str, tokens: dict[str, Any]) -> None:
    stored = {
        "hassUrl": base,
        "clientId": f"{base}/",
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_in": tokens["expires_in"],
        "token_type": "Bearer",
        "expires": int(time.time() * 1000) + tokens["expires_in"] * 1000,
    }
    await browser.send("Emulation.setDeviceMetricsOverride", **DESKTOP)
    # The frontend reads its login from localStorage: put one there, on HA's origin.
    await browser.send("Page.navigate", url=f"{base}/manifest.json")
    await asyncio.sleep(2)
    await browser.js(f"localStorage.setItem('hassTokens', JSON.stringify({stored!r})), true")
    await browser.send("Page.navigate", url=f"{base}/{DASHBOARD_URL}/homeiq")
    await asyncio.sleep(15)  # the frontend loads, connects and draws its history graphs
    for name, metrics, dark in (
        ("dashboard-light", DESKTOP, False),
        ("dashboard-dark", DESKTOP, True),
        ("dashboard-phone", PHONE, False),
    ):
        await shoot(browser, name, metrics, dark, full=False)


async def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    ports = {"ha": free_port(), "api": free_port(), "ingress": free_port()}
    base = f"http://127.0.0.1:{ports['ha']}"
    api = f"http://127.0.0.1:{ports['api']}"
    with tempfile.TemporaryDirectory(prefix="homeiq-shots-") as tmp:
        dev_dir = Path(tmp) / "dev"
        log(f"starting scripts/develop in {dev_dir} (log: {Path(tmp) / 'develop.log'})")
        with develop(dev_dir, ports):
            async with aiohttp.ClientSession() as session:
                await wait_for_http(session, f"{api}/api/v1/health?minimal=1", 300)
                token = (dev_dir / "addon" / "token").read_text().strip()
                await fill_panel(session, api, token)
                await wait_for_http(session, f"{base}/api/onboarding", 300)
                tokens = await onboard(session, base)
                await store_dashboard(session, base, tokens["access_token"])
            log(f"letting the demo run for {WAIT_S} s so the graphs have a line")
            await asyncio.sleep(WAIT_S)
            browser = Browser()
            await browser.start()
            try:
                await panel_shots(browser, f"http://127.0.0.1:{ports['ingress']}")
                await dashboard_shots(browser, base, tokens)
            finally:
                await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
