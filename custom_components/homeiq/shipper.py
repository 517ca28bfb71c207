"""Deliver spooled batches to the add-on, oldest first, until each one is acknowledged."""

from __future__ import annotations

import asyncio
from datetime import datetime
import random
import time

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .api import (
    HomeIQAuthError,
    HomeIQClient,
    HomeIQConnectionError,
    HomeIQError,
    HomeIQRateLimitedError,
    HomeIQResponseError,
    HomeIQServerError,
)
from .const import BACKOFF_INITIAL, BACKOFF_MAX, IN_FLIGHT, LOGGER, PROBE_INTERVAL
from .contract import API_VERSION
from .spool import Spool, SpoolItem
from .wire import plain_batch, refuses_shorter_form

# What `_ship` answers besides None (delivered) and a delay in seconds.
BACK_OFF = -1.0  # wait out the exponential back-off
BACK_OFF_UNTIL_BACK = -2.0  # the same, cut short when the unreachable add-on answers


class Shipper:
    """One background task whose IN_FLIGHT lanes each keep a batch on the wire, oldest first."""

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, client: HomeIQClient, spool: Spool
    ) -> None:
        """Nothing runs until `start`."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self.spool = spool
        self.connected = False
        self.last_error: str | None = None
        self.last_delivery: datetime | None = None
        self.delivery_latency_ms: float | None = None
        self.backoff_max = BACKOFF_MAX
        self._retry_now = asyncio.Event()
        self._backoff = BACKOFF_INITIAL
        # Cleared while a failure's back-off runs: no lane starts a batch meanwhile.
        self._sending = asyncio.Event()
        self._sending.set()
        self._task: asyncio.Task[None] | None = None
        self._reauth_started = False
        # Sends started, and the one whose outcome `connected` and `last_error` show. With
        # two batches on the wire, an older send may end after a newer one: its outcome
        # is older news (a batch refused before the next one was stored) and is not shown.
        self._attempts = 0
        self._shown = 0

    def retry_now(self) -> None:
        """Cut the current back-off short."""
        self._retry_now.set()

    def start(self) -> None:
        """Start the delivery task (it never blocks setup)."""
        self._task = self.entry.async_create_background_task(
            self.hass, self._run(), f"homeiq shipper {self.entry.entry_id}"
        )

    async def async_stop(self) -> None:
        """Cancel delivery; whatever was not acknowledged stays in the spool."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        await self._probe()
        async with asyncio.TaskGroup() as lanes:
            for _ in range(IN_FLIGHT):
                lanes.create_task(self._lane())

    async def _lane(self) -> None:
        """Send batches one after another, each time the oldest not on the wire.

        A lane goes on from one batch's acknowledgement to the next batch in the same
        task: under load each hand-off between tasks waited a turn of HA's loop.
        """
        while True:
            await self._sending.wait()
            item = await self.spool.async_take()
            if not self._sending.is_set():
                # A back-off began while this lane waited for a batch: it goes after it.
                self.spool.release(item)
                continue
            delay = await self._ship(item)
            if delay is None:
                self._backoff = BACKOFF_INITIAL
            elif self._sending.is_set():
                # The first failure holds every lane for its back-off; a failure meanwhile
                # (the other batch that was on the wire) waits with it.
                self._sending.clear()
                try:
                    await self._back_off(delay)
                finally:
                    self._sending.set()

    async def _back_off(self, delay: float) -> None:
        """Wait `delay` seconds, or the exponential back-off (`BACK_OFF`, `BACK_OFF_UNTIL_BACK`);
        `retry_now` cuts it short."""
        until_back = delay == BACK_OFF_UNTIL_BACK
        if delay < 0:
            # exponential back-off with jitter, so many clients don't retry in step
            delay = random.uniform(self._backoff / 2, self._backoff)
            self._backoff = min(self._backoff * 2, self.backoff_max)
        self._retry_now.clear()
        try:
            async with asyncio.timeout(delay):
                if until_back:
                    await self._wait_until_back()
                else:
                    await self._retry_now.wait()
        except TimeoutError:
            pass

    async def _wait_until_back(self) -> None:
        """Return on `retry_now` or as soon as the add-on answers the cheap probe.

        Only the minimal health is asked this often; batches keep the back-off while the
        add-on cannot be reached.
        """
        while True:
            try:
                async with asyncio.timeout(PROBE_INTERVAL):
                    await self._retry_now.wait()
                return
            except TimeoutError:
                pass
            try:
                await self.client.async_ping()
            except HomeIQError:
                continue
            return

    async def _probe(self) -> None:
        try:
            health = await self.client.async_health()
        except HomeIQError as err:
            self._failed(self._attempts, str(err))
            return
        version = health.api_version
        if version != API_VERSION:
            self.last_error = f"Add-on API version {version} is not {API_VERSION}: update both"
        else:
            self.connected = True

    async def _ship(self, item: SpoolItem) -> float | None:
        """Send one batch: None on success, a delay to wait, or -1 for the back-off."""
        self._attempts += 1
        attempt = self._attempts
        try:
            body = await self.spool.async_read(item)
            try:
                await self.client.async_ingest(body)
            except HomeIQResponseError as err:
                if not refuses_shorter_form(str(err)):
                    raise
                # An add-on of an earlier release took the place of the one that read each
                # entity once per batch, or the events as columns: the batch goes again as
                # events each carrying its entity's facts, and so do the next ones.
                self.client.addon_features = frozenset()
                plain = await self.hass.async_add_executor_job(plain_batch, body)
                if plain is None:
                    raise
                LOGGER.info(
                    "HomeIQ add-on reads no shorter batch form: %s sent in full", item.path.name
                )
                await self.client.async_ingest(plain)
        except HomeIQRateLimitedError as err:
            self._failed(attempt, str(err))
            return err.retry_after if err.retry_after is not None else BACK_OFF
        except HomeIQAuthError as err:
            self._failed(attempt, str(err))
            if not self._reauth_started:
                self._reauth_started = True
                self.entry.async_start_reauth(self.hass)
            return BACK_OFF
        except FileNotFoundError:
            # Its file went from under the spool (removed by hand, a file system check):
            # the events are gone, and trying again would block every batch behind it.
            LOGGER.error(
                "HomeIQ spool file %s is gone: its %s events are counted as dropped",
                item.path.name,
                item.events,
            )
            await self.spool.async_forget_missing(item)
            return None
        except (HomeIQServerError, OSError) as err:
            # It answered, failing (or the spool file could not be read): the probe would
            # only say it is up and have the batch resent at once.
            self._failed(attempt, str(err))
            return BACK_OFF
        except HomeIQConnectionError as err:
            self._failed(attempt, str(err))
            return BACK_OFF_UNTIL_BACK
        except HomeIQResponseError as err:
            # Our own payload was refused: resending it would only be refused again.
            LOGGER.error("Add-on rejected batch %s: %s", item.path.name, err)
            if self._show(attempt):
                self.last_error = f"Batch rejected: {err}"
            await self.spool.async_reject(item)
            return None
        finally:
            # Unless acknowledged or rejected, the batch stays the oldest for the next try.
            self.spool.release(item)
        # The status before the bookkeeping: while this file is removed, the other send
        # may end and empty the spool, and whoever waited for that reads the status.
        if self._show(attempt):
            self.connected = True
            self.last_error = None
        self.last_delivery = dt_util.utcnow()
        self.delivery_latency_ms = max(0.0, (time.time() - item.created) * 1000)
        await self.spool.async_acknowledge(item)
        return None

    def _show(self, attempt: int) -> bool:
        """Whether the outcome of send `attempt` is news: no later send's was shown."""
        if attempt < self._shown:
            return False
        self._shown = attempt
        return True

    def _failed(self, attempt: int, message: str) -> None:
        if not self._show(attempt):
            return
        if self.connected or self.last_error != message:
            LOGGER.info("HomeIQ add-on unavailable, events stay in the spool: %s", message)
        self.connected = False
        self.last_error = message
