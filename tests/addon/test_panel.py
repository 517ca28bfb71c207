"""The ingress panel end to end in real headless chromium, below an ingress prefix.

A tiny aiohttp reverse proxy plays the Supervisor (tests/browser.py). A failing test
leaves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
import re

import aiohttp
import pytest

from tests.addon.retention_data import T0, Api, event
from tests.browser import CHROMIUM, PREFIX, Browser, ingress_proxy
from tests.conftest import REPO, AddonProcess
from tests.mirror.addon import mirroring_addon, sensor_stream, vm_target
from tests.mirror.engines import VictoriaMetrics, VmAuth, running, wait_until

ARTIFACTS = REPO / "tests" / "artifacts"
RECENT = 12
# Everything that sticks out of the viewport sideways, is hidden or cannot be clicked:
# the page, each table, and each enabled button (scrolled into view first).
LAYOUT_PROBLEMS = """(() => {
  const problems = [];
  const width = window.innerWidth;
  if (document.documentElement.scrollWidth > width) problems.push("page scrolls sideways");
  for (const table of document.querySelectorAll("table")) {
    const box = table.getBoundingClientRect();
    if (table.scrollWidth > table.clientWidth + 1 || box.right > width + 0.5)
      problems.push(`table ${table.id || table.parentElement.id} is cut off`);
  }
  for (const th of document.querySelectorAll("main th")) {
    // A column too narrow for its own heading breaks it mid-word ("Hourl/y").
    const height = th.getBoundingClientRect().height;
    if (height > 36) problems.push(`column ${th.textContent} wraps`);
  }
  for (const button of document.querySelectorAll("main button")) {
    if (button.disabled) continue;
    button.scrollIntoView({ block: "center", inline: "nearest" });
    const box = button.getBoundingClientRect();
    const name = `${button.textContent} (${button.closest("[id]").id})`;
    if (!box.width || !box.height) { problems.push(`${name} is hidden`); continue; }
    if (box.left < 0 || box.right > width + 0.5) {
      problems.push(`${name} is off screen`);
      continue;
    }
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (!button.contains(hit)) problems.push(`${name} is covered`);
  }
  window.scrollTo(0, 0);
  return problems;
})()"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


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
        # And a dozen from the last few minutes, for the event-rate chart.
        now = datetime.now(UTC)
        last_hour = [event(now - timedelta(minutes=3), "light.desk", "on") for _ in range(RECENT)]
        await Api(addon_server, session).ingest(events + last_hour)
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

        # The chart shows the last hour as soon as the panel opens, with axes and a unit.
        caption = await browser.js("document.querySelector('#rate-caption').textContent")
        assert caption.startswith(f"Last hour: {RECENT} events, at most {RECENT} in a minute")
        # 59 whole minutes and the live rate at "now".
        assert await browser.js("document.querySelector('#rate-chart').dataset.points") == "60"
        # No backup yet: the list says so instead of staying blank.
        empty = await browser.js("document.querySelector('#backups tbody').innerText")
        assert empty.startswith("No backups yet.")
        # The token for adding the integration by hand: hidden until asked for, copyable.
        token = "document.querySelector('#token')"
        assert await browser.wait_for(f"{token}.value") == addon_server.token
        assert await browser.js(f"{token}.type") == "password"
        await browser.js(click("#token-show"))
        assert await browser.js(f"{token}.type") == "text"
        await browser.js(click("#token-copy"))
        copied = await browser.wait_for("document.querySelector('#token-message').textContent")
        assert copied.startswith("Copied.")

        # A bad glob is refused with the server's message, next to the form.
        await browser.js(fill({"#p-name": "power", "#p-match-type": "entity",
                               "#p-pattern": "sensor.[power", "#p-raw": "7"}))  # fmt: skip
        await browser.js(click("#policy-save"))
        message = await browser.wait_for("document.querySelector('#policy-error').textContent")
        assert message.startswith("Pattern:")  # the form's label, not the API's field name
        await browser.js(fill({"#p-pattern": "sensor.*_power", "#p-raw": "-3"}))
        await browser.js(click("#policy-save"))
        message = await browser.wait_for(
            "document.querySelector('#policy-error').textContent.startsWith('Raw days:')"
            " && document.querySelector('#policy-error').textContent"
        )
        assert "raw_days" not in message
        await browser.js(fill({"#p-raw": "7"}))
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
        assert addon_server.row_count() == 300 + RECENT

        # A backup is created and listed.
        await browser.js(click("#backup-create"))
        await browser.wait_for(
            "document.querySelectorAll('#backups tbody tr[data-backup]').length === 1"
        )
        name = await browser.js(
            "document.querySelector('#backups tbody tr[data-backup]').dataset.backup"
        )
        assert (addon_server.data_dir / "backups" / name).exists()

        # Restoring it takes a confirming second click and keeps the replaced data.
        await browser.js(click("#backups tbody tr button"))
        assert addon_server.row_count() == 300 + RECENT
        await browser.js(click("#backups tbody tr button"))
        message = await browser.wait_for(
            "document.querySelector('#backup-message').textContent.startsWith('Restored')"
            " && document.querySelector('#backup-message').textContent"
        )
        assert message.startswith(f"Restored {name}; the data it replaced is kept as homeiq-before")
        await browser.wait_for(
            "document.querySelectorAll('#backups tbody tr[data-backup]').length === 2"
        )

        # The real run deletes what the preview showed.
        await browser.js(click("#run-now"))
        summary = await browser.wait_for(
            "document.querySelector('#run-summary[data-dry-run=false]')?.textContent"
        )
        assert summary.startswith("Deleted 300 raw events")
        assert summary.endswith(", and 3 attribute sets no event uses any more.")
        assert addon_server.row_count() == RECENT

        # The live chart gets rate messages over the proxied WebSocket.
        await browser.wait_for("document.querySelector('#rate-now').textContent !== '\\u2013'")

        # Desktop width: every action is on screen too.
        assert await browser.js(LAYOUT_PROBLEMS) == []

        # HA's dark look follows the system setting, the header included.
        background = "getComputedStyle(document.body).backgroundColor"
        header = "getComputedStyle(document.querySelector('.top')).backgroundColor"
        assert await browser.js(background) == "rgb(250, 250, 250)"
        assert await browser.js(header) == "rgb(3, 169, 244)"
        dark = [{"name": "prefers-color-scheme", "value": "dark"}]
        await browser.send("Emulation.setEmulatedMedia", features=dark)
        assert await browser.js(background) == "rgb(17, 17, 17)"
        assert await browser.js(header) == "rgb(28, 28, 28)"

        # Phone width, dark and light: nothing sticks out sideways, no table is cut off,
        # and every button can be seen and clicked.
        await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                           deviceScaleFactor=2, mobile=True)  # fmt: skip
        for scheme in ("dark", "light"):
            features = [{"name": "prefers-color-scheme", "value": scheme}]
            await browser.send("Emulation.setEmulatedMedia", features=features)
            await asyncio.sleep(0.2)
            assert await browser.js("window.innerWidth") == 390
            assert await browser.js(LAYOUT_PROBLEMS) == [], scheme
            # The stacked rows still name their columns.
            labels = await browser.js(
                "[...document.querySelectorAll('[data-policy=power] td')]"
                ".map((td) => getComputedStyle(td, '::before').content)"
            )
            assert labels[:5] == ['"Name"', '"Matches"', '"Raw"', '"Hourly"', '"Daily"']
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

            # The panel's token route: never on the API port, with or without the token,
            # and on the ingress port only for the Supervisor.
            for headers in ({}, server.headers):
                async with session.get(f"{server.url}/token", headers=headers) as resp:
                    assert resp.status == (404 if headers else 401)
                    assert server.token not in await resp.text()
            async with session.get(f"{server.ingress_url}/token") as resp:
                assert resp.status == 403
                assert server.token not in await resp.text()
    finally:
        server.stop()


async def test_ingress_hands_the_token_to_the_panel(addon_server: AddonProcess) -> None:
    """Behind Home Assistant's login (ingress, here --dev loopback) the panel gets it."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{addon_server.ingress_url}/token") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        assert await resp.json() == {"token": addon_server.token}


async def test_panel_mirror_targets(tmp_path: Path, socket_enabled: None, browser: Browser) -> None:
    """Each target's status, lag and points; its connection tested from the panel (a
    reachable victoria-metrics, a token vmauth refuses); history sent again on a confirm."""
    victoria = VictoriaMetrics(tmp_path / "vm")
    guarded = VmAuth(tmp_path / "vmauth", victoria.url, "mirror-panel-token")
    events = sensor_stream(40, start=datetime.now(UTC) - timedelta(minutes=30), entities=4)
    targets = [vm_target("vm", victoria.url),
               vm_target("guarded", guarded.url, token="not-the-panel-token")]  # fmt: skip
    with (
        running(victoria, guarded),
        mirroring_addon(tmp_path / "data", mirror_targets=targets) as addon,
    ):
        addon.ingest(events)
        addon.wait_mirrored("vm")
        wait_until(lambda: addon.targets()["guarded"]["status"] == "auth_failed", 30, "refused")
        runner, proxy = await ingress_proxy(addon.ingress_url)
        try:
            await browser.send("Page.navigate", url=f"{proxy}{PREFIX}/")
            await browser.wait_for("document.body && document.body.dataset.ready === '1'")
            row = "document.querySelector('[data-target={}]')"
            text = await browser.wait_for(f"{row.format('vm')}?.innerText")
            assert "OK" in text
            assert "up to date" in text
            assert str(len(events)) in text  # points written
            refused = await browser.js(f"{row.format('guarded')}.innerText")
            assert "Access refused" in refused
            assert f"{len(events)} events" in refused  # its lag
            error = "document.querySelector('[data-target-error=guarded]').innerText"
            assert "check the token" in await browser.js(error)

            # Test connection: the reachable engine answers, vmauth refuses the token.
            await browser.js(click("[data-target=vm] button"))
            message = await browser.wait_for(
                "document.querySelector('#mirror-message').textContent.includes('connected')"
                " && document.querySelector('#mirror-message').textContent"
            )
            # What it says it is (victoria-metrics 1.79 answers as InfluxDB 1.8.0).
            assert re.fullmatch(r"vm: connected in \d+ ms \(version 1\.8\.0\)", message), message
            await browser.js(click("[data-target=guarded] button"))
            failure = await browser.wait_for("document.querySelector('#mirror-error').textContent")
            assert failure.startswith("guarded: ")
            assert "check the token" in failure
            assert await browser.js("document.querySelector('#mirror-message').textContent") == ""
            page = await browser.js("document.body.innerText")
            assert "not-the-panel-token" not in page
            assert "mirror-panel-token" not in page

            # Sending the history again takes a confirming second click.
            again = "[data-target=vm] button:nth-of-type(2)"
            await browser.js(click(again))
            assert await browser.js(f"document.querySelector({again!r}).textContent") == (
                "Confirm: send all again"
            )
            assert addon.targets()["vm"]["points_written"] == len(events)
            await browser.js(click(again))
            message = await browser.wait_for(
                "document.querySelector('#mirror-message').textContent.includes('again')"
                " && document.querySelector('#mirror-message').textContent"
            )
            assert message == f"vm: sending {len(events)} stored events again"
            assert addon.wait_mirrored("vm")["points_written"] == 2 * len(events)

            # Phone width: the card's rows, buttons and errors stay on screen.
            await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                               deviceScaleFactor=2, mobile=True)  # fmt: skip
            await asyncio.sleep(0.2)
            assert await browser.js(LAYOUT_PROBLEMS) == []
        finally:
            await runner.cleanup()
