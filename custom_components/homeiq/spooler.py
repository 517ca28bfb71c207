"""Sealed batches to the on-disk spool, in order and off the loop; the spool cap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .batch import Ready
from .const import DEFAULT_SPOOL_CAP_MB, DOMAIN, ISSUE_SPOOL_FULL, LOGGER
from .shipper import Shipper
from .spool import Spool, SpoolItem


class SpoolWriter:
    """One task writes whatever batches are queued, all in one executor job per turn.

    The serializing flush only queues its batches here: the Events it took are released at
    once instead of waiting for the disk. One job per turn, not per batch: each hand-off to
    a thread and back costs an event loop iteration, which under load is tens of ms.
    """

    def __init__(
        self, hass: HomeAssistant, spool: Spool, shipper: Shipper, on_change: Callable[[], None]
    ) -> None:
        """Nothing is written until `submit`."""
        self.hass = hass
        self.spool = spool
        self.shipper = shipper
        self._on_change = on_change
        self.cap_bytes = DEFAULT_SPOOL_CAP_MB * 1024 * 1024
        self.dropped = 0  # events dropped at the cap
        self.writing = 0  # events in batches queued or being written
        self._queue: list[Ready] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, ready: list[Ready]) -> None:
        """Queue batches behind the ones already queued (spool order = capture order)."""
        self._queue += ready
        self.writing += sum(batch.events for batch in ready)
        if self._task is None:
            self._task = self.hass.async_create_task(
                self._async_run(), "homeiq spool write", eager_start=False
            )

    async def async_write(self, ready: list[Ready]) -> None:
        """Write after the queued batches, in the caller's task (it waits for the disk).

        The caller holds the pipeline's flush lock, so nothing is queued behind meanwhile.
        """
        if self._task is not None:
            await asyncio.wait([self._task])  # a failed write is logged by its own task
        self._queue += ready
        self.writing += sum(batch.events for batch in ready)
        await self._async_drain()

    async def _async_run(self) -> None:
        try:
            await self._async_drain()
        finally:
            self._task = None

    async def _async_drain(self) -> None:
        while self._queue:
            ready, self._queue = self._queue, []
            try:
                items = await self.hass.async_add_executor_job(self._write, ready)
            finally:
                self.writing -= sum(batch.events for batch in ready)
            self.shipper.add(items)
            await self._async_enforce_cap()
            self._on_change()

    def _write(self, ready: list[Ready]) -> list[SpoolItem]:
        return [self.spool.write(*batch) for batch in ready]

    async def _async_enforce_cap(self) -> None:
        dropped: list[SpoolItem] = []
        while self.shipper.spool_bytes > self.cap_bytes:
            item = self.shipper.take_oldest()
            if item is None:
                break
            dropped.append(item)
        if not dropped:
            return
        count = sum(item.events for item in dropped)
        self.dropped += count
        LOGGER.warning("HomeIQ spool is full: dropped the %s oldest events", count)
        await self.hass.async_add_executor_job(self.spool.remove, dropped)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            ISSUE_SPOOL_FULL,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_SPOOL_FULL,
            translation_placeholders={
                "dropped": str(self.dropped + self.shipper.rejected_events),
                "spool_cap_mb": str(round(self.cap_bytes / 1024 / 1024)),
            },
        )
