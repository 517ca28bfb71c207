"""A plain Home Assistant for fault tests: its own thread and event loop, real storage.

Not the `hass` fixture: that one runs asyncio in debug mode, keeps storage in memory and
cannot be stopped and started again on the same config dir. Here the core is built as
benchmarks/bench_capture.py builds it, stopped with `hass.async_stop()` exactly as Home
Assistant stops (background tasks cancelled, then homeassistant_stop, then the final
write), and a second instance can start on the same config dir.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
import datetime
from pathlib import Path
import threading
from typing import Any

from homeassistant import auth, bootstrap, config_entries, loader
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from custom_components.homeiq.const import DEFAULT_OPTIONS, DOMAIN
from custom_components.homeiq.pipeline import Pipeline
from custom_components.homeiq.spool import spool_dir
from tests.spooled import spooled_events

ENTRY_ID = "01RELIABILITY0000000000000"
SENSOR = "sensor.reliability"


class PlainHass:
    """One Home Assistant instance on `config_dir`, driven from the test's thread."""

    def __init__(self, config_dir: Path) -> None:
        config_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir = config_dir
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="plain-hass", daemon=True)
        self._thread.start()
        self.hass: HomeAssistant = self.run(self._async_make_hass())
        self.running = True

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def run[T](self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coro` on this instance's loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def _async_make_hass(self) -> HomeAssistant:
        hass = HomeAssistant(str(self.config_dir))
        hass.config.skip_pip = True
        loader.async_setup(hass)
        hass.config_entries = config_entries.ConfigEntries(hass, {})
        await bootstrap.async_load_base_functionality(hass)
        hass.auth = await auth.auth_manager_from_config(hass, [], [])
        # No `network` (and so no `http` on port 8123), unlike the benchmark: the test plugin
        # already replaced the zeroconf resolver HA's shared aiohttp session would ask it for.
        await hass.async_start()
        return hass

    def set_up_entry(self, url: str, token: str, **options: Any) -> Pipeline:
        """Add the HomeIQ entry (or set up the one an earlier instance left) and start it."""
        return self.run(self._async_set_up_entry(url, token, options))

    async def _async_set_up_entry(self, url: str, token: str, options: dict[str, Any]) -> Pipeline:
        hass = self.hass
        entry = hass.config_entries.async_get_entry(ENTRY_ID)
        if entry is None:
            entry = config_entries.ConfigEntry(
                data={"url": url, "token": token},
                discovery_keys={},
                domain=DOMAIN,
                entry_id=ENTRY_ID,
                minor_version=1,
                options={**DEFAULT_OPTIONS, **options},
                source="user",
                subentries_data=None,
                title="HomeIQ",
                unique_id="reliability",
                version=1,
            )
            await hass.config_entries.async_add(entry)
        else:
            hass.config_entries.async_update_entry(entry, data={"url": url, "token": token})
            assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        pipeline: Pipeline = entry.runtime_data.pipeline
        return pipeline

    @property
    def entry(self) -> config_entries.ConfigEntry[Any]:
        entry = self.hass.config_entries.async_get_entry(ENTRY_ID)
        assert entry is not None
        return entry

    def stop[T](self, before: Callable[[], Awaitable[T]] | None = None) -> T | None:
        """Stop Home Assistant as it stops for real, then its loop and executor.

        `before` runs on the loop first, and the stop starts in the same step: nothing
        else runs in between (a flush it saw paused is still paused).
        """
        if not self.running:
            return None
        self.running = False

        async def stop() -> T | None:
            result = None if before is None else await before()
            await self.hass.async_stop()
            return result

        try:
            return self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(60)
            # HA sets its own zone object; the test plugin checks the default is restored.
            dt_util.DEFAULT_TIME_ZONE = datetime.UTC

    def spool_events(self) -> list[dict[str, Any]]:
        """Every event in the entry's spool files (read after the instance stopped)."""
        events: list[dict[str, Any]] = []
        for path in sorted(spool_dir(self.hass, ENTRY_ID).glob("*.json")):
            events += spooled_events(path.read_bytes())
        return events

    def issue(self, issue_id: str) -> ir.IssueEntry | None:
        """A HomeIQ repair issue, as the issue registry holds it."""

        async def get() -> ir.IssueEntry | None:
            return ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id)

        return self.run(get())

    def state(self, entity_id: str) -> str | None:
        """An entity's state after a fresh coordinator refresh."""

        async def refresh() -> str | None:
            await self.entry.runtime_data.coordinator.async_refresh()
            await self.hass.async_block_till_done()
            state = self.hass.states.get(entity_id)
            return None if state is None else state.state

        return self.run(refresh())


async def set_states(hass: HomeAssistant, first: int, count: int, **attributes: Any) -> None:
    """`count` state changes of SENSOR (values first..first+count-1) in one go."""
    for value in range(first, first + count):
        hass.states.async_set(SENSOR, str(value), attributes)


def sensor_values(events: list[dict[str, Any]]) -> list[int]:
    """The values of SENSOR's state changes among wire events, in order."""
    return [
        int(event["state"])
        for event in events
        if event["event_type"] == "state_changed" and event.get("entity_id") == SENSOR
    ]
