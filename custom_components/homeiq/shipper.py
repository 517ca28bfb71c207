"""Deliver spooled batches to the add-on, oldest first, until each one is acknowledged."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
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
from .const import API_VERSION, BACKOFF_INITIAL, BACKOFF_MAX, LOGGER, PROBE_INTERVAL
from .dropped import DroppedEvents
from .spool import Spool, SpoolItem

# Batch bodies kept in memory so the common path never reads the file back: a couple of
# default-size batches (~0.5 MB each). Bigger or more come back from the page cache, which
# costs a read but keeps megabytes out of HA's RSS under load.
MEMORY_BUDGET = 1024 * 1024
# What `_ship` answers besides None (delivered) and a delay in seconds.
BACK_OFF = -1.0  # wait out the exponential back-off
BACK_OFF_UNTIL_BACK = -2.0  # the same, cut short when the unreachable add-on answers


class Shipper:
    """One background task; a single request in flight keeps delivery in order."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: HomeIQClient,
        spool: Spool,
        on_change: Callable[[], None],
        *,
        dropped: DroppedEvents,
    ) -> None:
        """Nothing runs until `start`."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self.spool = spool
        self.dropped = dropped
        self._on_change = on_change
        self.pending: deque[SpoolItem] = deque()
        self.inflight: SpoolItem | None = None
        self.backlog_events = 0
        self.spool_bytes = 0
        self.connected = False
        self.last_error: str | None = None
        self.last_delivery: datetime | None = None
        self.delivery_latency_ms: float | None = None
        self.backoff_max = BACKOFF_MAX
        self._memory = 0
        self._work = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._reauth_started = False
        self._prefetched: tuple[SpoolItem, bytes] | None = None
        self._removals: list[asyncio.Future[None]] = []

    def add(self, items: list[SpoolItem]) -> None:
        """Queue newly spooled batches behind the ones already waiting."""
        for item in items:
            if item.body is not None:
                if self._memory + item.nbytes > MEMORY_BUDGET:
                    item.body = None
                else:
                    self._memory += item.nbytes
            self.pending.append(item)
            self.backlog_events += item.events
            self.spool_bytes += item.nbytes
        if items:
            self._idle.clear()
            self._work.set()

    def take_oldest(self) -> SpoolItem | None:
        """Remove the oldest batch that is not on the wire (the spool is over its cap)."""
        index = 1 if self.inflight is not None else 0
        if len(self.pending) <= index:
            return None
        item = self.pending[index]
        del self.pending[index]
        self._forget(item)
        return item

    def _forget(self, item: SpoolItem) -> None:
        self.backlog_events -= item.events
        self.spool_bytes -= item.nbytes
        if item.body is not None:
            self._memory -= item.nbytes
            item.body = None
        if not self.pending:
            self._idle.set()

    def retry_now(self) -> None:
        """Cut the current back-off short."""
        self._retry_now.set()
        self._work.set()

    async def async_wait_idle(self) -> None:
        """Wait until every spooled batch is acknowledged."""
        await self._idle.wait()

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
        backoff = BACKOFF_INITIAL
        while True:
            if not self.pending:
                self._work.clear()
                await self._work.wait()
                continue
            delay = await self._ship(self.pending[0])
            if delay is None:
                backoff = BACKOFF_INITIAL
                continue
            until_back = delay == BACK_OFF_UNTIL_BACK
            if delay < 0:
                # exponential back-off with jitter, so many clients don't retry in step
                delay = random.uniform(backoff / 2, backoff)
                backoff = min(backoff * 2, self.backoff_max)
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
            self._failed(str(err))
            return
        version = health.get("api_version", API_VERSION)
        if version != API_VERSION:
            self.last_error = f"Add-on API version {version} is not {API_VERSION}: update both"
        else:
            self.connected = True
        self._on_change()

    async def _ship(self, item: SpoolItem) -> float | None:
        """Send one batch: None on success, a delay to wait, or -1 for the back-off."""
        self.inflight = item
        prefetch: asyncio.Future[bytes] | None = None
        following: SpoolItem | None = None
        try:
            body = item.body
            if body is None:
                if self._prefetched is not None and self._prefetched[0] is item:
                    body = self._prefetched[1]
                else:
                    body = await self.hass.async_add_executor_job(self.spool.read, item)
            self._prefetched = None
            if len(self.pending) > 1 and self.pending[1].body is None:
                # read the next batch from disk while this one is on the wire
                following = self.pending[1]
                prefetch = self.hass.async_add_executor_job(self.spool.read, following)
            await self.client.async_ingest(body)
        except HomeIQRateLimitedError as err:
            self._failed(str(err))
            return err.retry_after if err.retry_after is not None else BACK_OFF
        except HomeIQAuthError as err:
            self._failed(str(err))
            if not self._reauth_started:
                self._reauth_started = True
                self.entry.async_start_reauth(self.hass)
            return BACK_OFF
        except (HomeIQServerError, OSError) as err:
            # It answered, failing (or the spool file could not be read): the probe would
            # only say it is up and have the batch resent at once.
            self._failed(str(err))
            return BACK_OFF
        except HomeIQConnectionError as err:
            self._failed(str(err))
            return BACK_OFF_UNTIL_BACK
        except HomeIQResponseError as err:
            # Our own payload was refused: keep the file aside, count its events as dropped.
            LOGGER.error("Add-on rejected batch %s: %s", item.path.name, err)
            self.last_error = f"Batch rejected: {err}"
            self._done(item)
            self.dropped.add(item.events)
            # Shielded: renamed even if this task is cancelled, or the next start resends it.
            await asyncio.shield(
                self.hass.async_add_executor_job(
                    item.path.rename, item.path.with_suffix(".rejected")
                )
            )
            self._on_change()
            return None
        finally:
            self.inflight = None
            if prefetch is not None and following is not None:
                try:
                    self._prefetched = (following, await prefetch)
                except OSError:  # dropped at the spool cap meanwhile: read again later
                    self._prefetched = None
        # Acknowledged: forget the file. The next send need not wait for that, but "idle"
        # must mean the spool really is empty.
        self._removals = [job for job in self._removals if not job.done()]
        self._removals.append(self.hass.async_add_executor_job(self.spool.remove, [item]))
        if len(self.pending) == 1:
            # wait, not gather: a cancelled shipper must not cancel the removals
            await asyncio.wait(self._removals)
            self._removals.clear()
        self._done(item)
        self.connected = True
        self.last_error = None
        self.last_delivery = dt_util.utcnow()
        self.delivery_latency_ms = max(0.0, (time.time() - item.created) * 1000)
        self._on_change()
        return None

    def _done(self, item: SpoolItem) -> None:
        if self.pending and self.pending[0] is item:
            self.pending.popleft()
            self._forget(item)

    def _failed(self, message: str) -> None:
        if self.connected or self.last_error != message:
            LOGGER.info("HomeIQ add-on unavailable, events stay in the spool: %s", message)
        self.connected = False
        self.last_error = message
        self._on_change()
