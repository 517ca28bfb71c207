"""Sealed batches to the on-disk spool, in order and off the loop; the spool cap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .batch import Ready
from .const import DEFAULT_SPOOL_CAP_MB, DOMAIN, ISSUE_SPOOL_FULL, LOGGER
from .dropped import DroppedEvents
from .shipper import Shipper
from .spool import Spool, SpoolItem


class SpoolWriter:
    """One task writes whatever batches are queued, all in one executor job per turn.

    The serializing flush only queues its batches here: the Events it took are released at
    once instead of waiting for the disk. One job per turn, not per batch: each hand-off to
    a thread and back costs an event loop iteration, which under load is tens of ms.

    Cancelling a write (Home Assistant stopping, an unload) loses nothing: the queue and
    the job on the disk stay here, and the next write (the final flush) finishes them.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        spool: Spool,
        shipper: Shipper,
        dropped: DroppedEvents,
        on_change: Callable[[], None],
    ) -> None:
        """Nothing is written until `submit`."""
        self.hass = hass
        self.spool = spool
        self.shipper = shipper
        self.dropped = dropped
        self._on_change = on_change
        self.cap_bytes = DEFAULT_SPOOL_CAP_MB * 1024 * 1024
        self.writing = 0  # events in batches queued or being written
        self._queue: list[Ready] = []
        # The batches on their way to the disk and the executor job writing them.
        self._job: tuple[list[Ready], asyncio.Future[list[SpoolItem | None]]] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def on_disk_soon(self) -> int:
        """Events in the job being written now (the thread finishes it whatever happens)."""
        return 0 if self._job is None else sum(batch.events for batch in self._job[0])

    def submit(self, ready: list[Ready]) -> None:
        """Queue batches behind the ones already queued (spool order = capture order)."""
        self._enqueue(ready)
        if self._task is None:
            self._task = self.hass.async_create_task(
                self._async_run(), "homeiq spool write", eager_start=False
            )

    async def async_write(self, ready: list[Ready]) -> None:
        """Write after the queued batches, in the caller's task (it waits for the disk).

        The caller holds the pipeline's flush lock, so nothing is queued behind meanwhile.
        """
        self._enqueue(ready)  # before any await: a cancelled caller leaves them queued
        if self._task is not None:
            await asyncio.wait([self._task])  # a failed write is logged by its own task
        await self._async_drain()

    def discard_queued(self) -> None:
        """Forget the batches not yet on their way to the disk (the pipeline gave up)."""
        self.writing -= sum(batch.events for batch in self._queue)
        self._queue = []

    def _enqueue(self, ready: list[Ready]) -> None:
        self._queue += ready
        self.writing += sum(batch.events for batch in ready)

    async def _async_run(self) -> None:
        try:
            await self._async_drain()
        finally:
            self._task = None

    async def _async_drain(self) -> None:
        while self._queue or self._job is not None:
            if self._job is None:
                ready, self._queue = self._queue, []
                self._job = (ready, self.hass.async_add_executor_job(self._write, ready))
            ready, job = self._job
            # Shielded: a cancelled drain leaves the job running; the next drain collects it.
            written = await asyncio.shield(job)
            self._job = None
            self.writing -= sum(batch.events for batch in ready)
            lost = sum(
                batch.events for batch, item in zip(ready, written, strict=True) if item is None
            )
            if lost:
                LOGGER.error("HomeIQ could not write %s events to its spool: dropped", lost)
                self.dropped.add(lost)
            self.shipper.add([item for item in written if item is not None])
            await self._async_enforce_cap()
            self._on_change()

    def _write(self, ready: list[Ready]) -> list[SpoolItem | None]:
        written: list[SpoolItem | None] = []
        for batch in ready:
            try:
                written.append(self.spool.write(*batch))
            except OSError as err:  # a full or read-only disk: the batch cannot be kept
                LOGGER.error("HomeIQ spool write failed: %s", err)
                written.append(None)
        return written

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
        self.dropped.add(count)
        LOGGER.warning("HomeIQ spool is full: dropped the %s oldest events", count)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            ISSUE_SPOOL_FULL,
            is_fixable=False,
            # The count is kept across restarts, and so is the issue that reports it.
            is_persistent=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_SPOOL_FULL,
            translation_placeholders={
                "dropped": str(self.dropped.total),
                "spool_cap_mb": str(round(self.cap_bytes / 1024 / 1024)),
            },
        )
        # Shielded: the files go even if this task is cancelled (HA stopping).
        await asyncio.shield(self.hass.async_add_executor_job(self.spool.remove, dropped))
