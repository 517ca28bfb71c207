"""The on-disk spool and its accounting: what waits for the add-on, what was given up.

One file per batch, named by sequence so batches go oldest first. The spool alone decides
what is kept: it holds the cap (the oldest batches go when it is exceeded, never one on
the wire), counts every event given up and keeps that count across restarts. The writer
puts batches in, the shipper takes the oldest not on the wire out and says what became
of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
import mmap
import os
from pathlib import Path
import shutil
import time
from typing import TypedDict

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import STORAGE_DIR, Store

from .batch import Ready
from .const import DEFAULT_SPOOL_CAP_MB, DOMAIN, IN_FLIGHT, ISSUE_SPOOL_FULL, LOGGER

SUFFIX = ".json"
# The biggest body read while the one before it is on the wire (a default batch of 1,000
# events is about 0.3 MB).
READ_AHEAD_MAX = 1024 * 1024
DROPPED_STORAGE_VERSION = 1
# Parts per writev call (the kernel's limit, 1024 on Linux).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
# Drops come in bursts (one per spool write while the cap is hit): one file write per burst.
DROPPED_SAVE_DELAY = 1.0


def spool_dir(hass: HomeAssistant, entry_id: str) -> Path:
    """Where an entry's spool lives, under the HA config dir."""
    return Path(hass.config.path(STORAGE_DIR, "homeiq_spool", entry_id))


@dataclass(slots=True, eq=False)  # compared by identity: one object per file
class SpoolItem:
    """One spooled batch: its file, and what it holds."""

    seq: int
    path: Path
    events: int
    nbytes: int
    created: float = field(default_factory=time.time)
    # Its bytes, kept from the write for the shipper (`Spool.write`'s `keep`): given to the
    # first send, which then need not read the file back.
    body: memoryview | None = None


@dataclass(slots=True)
class Written:
    """What one write to the disk left: the files, and the events the disk refused."""

    items: list[SpoolItem]
    lost: int


class _SavedDropped(TypedDict):
    dropped: int


class Spool:
    """Files `<seq>_<events>_<batch_id>.json` in one directory per config entry.

    The methods without `async_` that touch files block, and run in an executor thread.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Nothing touches the disk until `async_load`."""
        self.hass = hass
        self.directory = spool_dir(hass, entry_id)
        self.cap_bytes = DEFAULT_SPOOL_CAP_MB * 1024 * 1024
        self.backlog_events = 0  # events in the spool, not yet acknowledged
        self.size_bytes = 0
        # Events given up since the entry was added: dropped at the cap, refused by the
        # add-on, not writable, or not spooled within the shutdown bound.
        self.dropped_total = 0
        self._next_seq = 1
        self._items: deque[SpoolItem] = deque()
        # Taken by the shipper, oldest first (at most IN_FLIGHT): the cap keeps them.
        self._on_wire: list[SpoolItem] = []
        self._read_ahead: tuple[SpoolItem, asyncio.Future[memoryview | None]] | None = None
        self._removals: list[asyncio.Future[None]] = []
        self._filled = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._dropped_store: Store[_SavedDropped] = Store(
            hass, DROPPED_STORAGE_VERSION, f"{DOMAIN}.{entry_id}.dropped"
        )
        self._dropped_unsaved = False

    # --- putting in ----------------------------------------------------------------
    async def async_load(self) -> None:
        """Take up what an earlier run left: its files, oldest first, and its dropped count."""
        saved = await self._dropped_store.async_load()
        self.dropped_total = saved["dropped"] if saved else 0
        self._queue(await self.hass.async_add_executor_job(self._load))

    def write(self, batches: list[Ready], keep: int = 0) -> Written:
        """Write batches in order, each atomically (temp file + rename). Blocking.

        The first `keep` batches also keep their bytes in memory (`SpoolItem.body`, from
        `bodies_wanted`): under load, reading a file back in HA's executor took tens of
        ms (each system call of that thread waits for the GIL behind the busy loop),
        while the add-on waited for the batch.
        """
        items: list[SpoolItem] = []
        lost = 0
        for batch_id, events, parts in batches:
            nbytes = sum(map(len, parts))
            seq = self._next_seq
            self._next_seq += 1
            path = self.directory / f"{seq:012d}_{events}_{batch_id}{SUFFIX}"
            tmp = path.with_suffix(".tmp")
            body = _joined(parts, nbytes) if len(items) < keep else None
            try:
                with tmp.open("wb", buffering=0) as file:
                    _write_all(file.fileno(), parts if body is None else [body])
                tmp.replace(path)
            except OSError as err:  # a full or read-only disk: the batch cannot be kept
                LOGGER.error("HomeIQ spool write failed: %s", err)
                lost += events
                continue
            finally:
                parts.clear()  # the next batches are written meanwhile: free these now
            items.append(SpoolItem(seq, path, events, nbytes, body=body))
        return Written(items, lost)

    async def async_put(self, written: Written) -> None:
        """Queue newly written batches behind the others; past the cap, drop the oldest."""
        if written.lost:
            LOGGER.error("HomeIQ could not write %s events to its spool: dropped", written.lost)
            self.count_dropped(written.lost)
        self._queue(written.items)
        await self._async_enforce_cap()

    def count_dropped(self, events: int) -> None:
        """Count events given up for good; saved a second later (HA saves it on stop too)."""
        self.dropped_total += events
        self._dropped_unsaved = True
        self._dropped_store.async_delay_save(self._saved_dropped, DROPPED_SAVE_DELAY)

    def bodies_wanted(self) -> int:
        """How many of the batches written next should keep their bytes for the shipper:
        as many as go on the wire at once, less the batches already waiting for it (none
        while it backs off from a failure with batches waiting)."""
        waiting = islice((item for item in self._items if item not in self._on_wire), IN_FLIGHT)
        return IN_FLIGHT - sum(1 for _ in waiting)

    # --- taking out ----------------------------------------------------------------
    def take_next(self) -> SpoolItem | None:
        """The oldest batch not on the wire, now on it (the cap spares it) until it is
        acknowledged, rejected or released; None when every batch is on the wire."""
        if (item := self._next_free()) is not None:
            self._on_wire.append(item)
        return item

    async def async_take(self) -> SpoolItem:
        """Wait for a batch that is not on the wire, and take it (`take_next`)."""
        while (item := self.take_next()) is None:
            self._filled.clear()
            await self._filled.wait()
        return item

    async def async_read(self, item: SpoolItem) -> memoryview:
        """The batch's body (`OSError` if its file is gone or unreadable); the next one is
        read meanwhile.

        Read into memory of its own, mapped for it and unmapped when it is dropped, not
        into HA's heap: a megabyte copy per request left glibc holding free heap after
        it, which HA's RSS kept under load. (Not the file itself mapped: a disk error
        while the request reads it would be a SIGBUS that ends HA, not an OSError.)
        """
        body = None
        if item.body is not None:
            body, item.body = item.body, None  # a send that fails reads the file next time
        elif self._read_ahead is not None and self._read_ahead[0] is item:
            body = await self._read_ahead[1]  # None: dropped at the cap meanwhile, read again
        if body is None:
            body = await self.hass.async_add_executor_job(_read, item.path)
        following = self._next_free()
        if following is None or following.body is not None or following.nbytes > READ_AHEAD_MAX:
            # Read ahead only a body of a batch of the default size or so: one of
            # megabytes read while the last one is sent would double what HA holds, to
            # save one executor job per batch.
            self._read_ahead = None
        elif self._read_ahead is None or self._read_ahead[0] is not following:
            self._read_ahead = (
                following,
                self.hass.async_add_executor_job(_read_if_there, following.path),
            )
        return body

    def release(self, item: SpoolItem) -> None:
        """The batch is off the wire; unless acknowledged or rejected, it stays in its place."""
        if item in self._on_wire:
            self._on_wire.remove(item)

    async def async_acknowledge(self, item: SpoolItem) -> None:
        """The add-on stored the batch: forget it and remove its file."""
        self.release(item)
        self._forget(item)
        # The next send need not wait for the file to go, but "empty" means no file is left.
        self._removals = [job for job in self._removals if not job.done()]
        self._removals.append(self.hass.async_add_executor_job(_remove, [item]))
        await self._async_settle_once_removed()

    async def async_reject(self, item: SpoolItem) -> None:
        """The add-on refused the batch: keep the file aside, count its events as dropped."""
        self.release(item)
        self._forget(item)
        self.count_dropped(item.events)
        # Shielded: renamed even if this task is cancelled, or the next start resends it.
        await asyncio.shield(
            self.hass.async_add_executor_job(item.path.rename, item.path.with_suffix(".rejected"))
        )
        self._settle()

    async def async_forget_missing(self, item: SpoolItem) -> None:
        """The batch's file is gone: forget it and count its events as dropped."""
        self.release(item)
        self._forget(item)
        self.count_dropped(item.events)
        await self._async_settle_once_removed()

    async def async_wait_empty(self) -> None:
        """Wait until every spooled batch is acknowledged (or given up)."""
        await self._empty.wait()

    # --- life cycle ----------------------------------------------------------------
    async def async_save(self) -> None:
        """Write a changed dropped count now (the pipeline is stopping)."""
        if self._dropped_unsaved:
            self._dropped_unsaved = False
            await self._dropped_store.async_save(self._saved_dropped())

    async def async_remove(self) -> None:
        """Remove the files and the dropped count (the config entry was deleted)."""
        await self.hass.async_add_executor_job(shutil.rmtree, self.directory, True)
        await self._dropped_store.async_remove()

    # --- internals -----------------------------------------------------------------
    def _load(self) -> list[SpoolItem]:
        self.directory.mkdir(parents=True, exist_ok=True)
        items: list[SpoolItem] = []
        for path in self.directory.iterdir():
            if path.suffix == ".tmp":
                # a write cut short by a crash: its events were never counted as spooled
                path.unlink(missing_ok=True)
                continue
            parts = path.stem.split("_", 2)
            if path.suffix != SUFFIX or len(parts) != 3 or not parts[0].isdigit():
                continue
            stat = path.stat()
            items.append(SpoolItem(int(parts[0]), path, int(parts[1]), stat.st_size, stat.st_mtime))
        items.sort(key=lambda item: item.seq)
        if items:
            self._next_seq = items[-1].seq + 1
        return items

    def _queue(self, items: list[SpoolItem]) -> None:
        for item in items:
            self._items.append(item)
            self.backlog_events += item.events
            self.size_bytes += item.nbytes
        if items:
            self._empty.clear()
            self._filled.set()

    async def _async_enforce_cap(self) -> None:
        dropped: list[SpoolItem] = []
        while self.size_bytes > self.cap_bytes and (item := self._next_free()) is not None:
            self._forget(item)
            dropped.append(item)
        if not dropped:
            return
        count = sum(item.events for item in dropped)
        self.count_dropped(count)
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
                "dropped": str(self.dropped_total),
                "spool_cap_mb": str(round(self.cap_bytes / 1024 / 1024)),
            },
        )
        # Shielded: the files go even if this task is cancelled (HA stopping).
        await asyncio.shield(self.hass.async_add_executor_job(_remove, dropped))
        self._settle()

    def _next_free(self) -> SpoolItem | None:
        """The oldest batch not on the wire."""
        return next((item for item in self._items if item not in self._on_wire), None)

    def _forget(self, item: SpoolItem) -> None:
        item.body = None
        self._items.remove(item)
        self.backlog_events -= item.events
        self.size_bytes -= item.nbytes

    async def _async_settle_once_removed(self) -> None:
        """With no batch left, say so once the files of acknowledged ones are gone."""
        if self._items:
            return
        if self._removals:
            # wait, not gather: a cancelled shipper must not cancel the removals
            await asyncio.wait(self._removals)
            self._removals.clear()
        self._settle()

    def _settle(self) -> None:
        """Called once the files of forgotten batches are gone."""
        if not self._items:
            self._empty.set()

    def _saved_dropped(self) -> _SavedDropped:
        return {"dropped": self.dropped_total}


def _write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Every part, in order, in as few system calls as the kernel allows: one `writev`
    for a whole batch. Each call lets go of the GIL and must take it back, behind a busy
    event loop a switch interval (5 ms) later: part by part, a batch of fifty parts took
    a quarter second, and batches waiting for the disk held megabytes of HA's memory."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views[0])
            del views[0]
        if written:
            views[0] = views[0][written:]


def _joined(parts: list[bytes], size: int) -> memoryview:
    """The parts, in an anonymous mapping of their size (see Spool.async_read)."""
    if not size:
        return memoryview(b"")
    view = memoryview(mmap.mmap(-1, size))
    at = 0
    for part in parts:
        view[at : at + len(part)] = part
        at += len(part)
    return view


def _read(path: Path) -> memoryview:
    """The file's bytes, in an anonymous mapping of their size (see Spool.async_read)."""
    with path.open("rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        if not size:  # nothing to map (an empty file is no batch: the add-on says so)
            return memoryview(b"")
        view = memoryview(mmap.mmap(-1, size))
        got = 0
        while got < size and (n := file.readinto(view[got:])):
            got += n
        return view if got == size else view[:got]


def _read_if_there(path: Path) -> memoryview | None:
    """Read ahead: None when the file went meanwhile (the caller reads, and fails, again)."""
    try:
        return _read(path)
    except OSError:
        return None


def _remove(items: list[SpoolItem]) -> None:
    for item in items:
        item.path.unlink(missing_ok=True)
