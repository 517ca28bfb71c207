"""Sealed batches to the on-disk spool, in order and off the loop."""

from __future__ import annotations

import asyncio

from homeassistant.core import HomeAssistant

from .batch import Ready
from .spool import Spool, Written


class SpoolWriter:
    """One task writes whatever batches are queued, all in one executor job per turn.

    The serializing flush only queues its batches here: the Events it took are released at
    once instead of waiting for the disk. One job per turn, not per batch: each hand-off to
    a thread and back costs an event loop iteration, which under load is tens of ms.

    Cancelling a write (Home Assistant stopping, an unload) loses nothing: the queue and
    the job on the disk stay here, and the next write (the final flush) finishes them.
    """

    def __init__(self, hass: HomeAssistant, spool: Spool) -> None:
        """Nothing is written until `submit`."""
        self.hass = hass
        self.spool = spool
        self.writing = 0  # events in batches queued or being written
        self._queue: list[Ready] = []
        # The batches on their way to the disk and the executor job writing them.
        self._job: tuple[list[Ready], asyncio.Future[Written]] | None = None
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
                self._job = (
                    ready,
                    self.hass.async_add_executor_job(
                        self.spool.write, ready, self.spool.bodies_wanted()
                    ),
                )
            ready, job = self._job
            # Shielded: a cancelled drain leaves the job running; the next drain collects it.
            written = await asyncio.shield(job)
            self._job = None
            self.writing -= sum(batch.events for batch in ready)
            await self.spool.async_put(written)
