"""The decode worker process: big bodies in, decoded batches out.

Why: the writer thread is ingest's one serial resource, and decoding a body (msgspec,
the contract's rules, the id-free part of the rows: decode.py) was about half of its
work per event, all of it holding the GIL. Big bodies are therefore decoded in a worker
process on the other core; the writer only gives the values their ids and inserts
(rows.py). Ids are the writer's alone: the worker knows none.

The protocol, all of it:
- One child process, ``python -m homeiq_addon.ingest.worker_child`` (which imports only
  what decoding needs: ~18 MB), started by the add-on on the first body of at least
  WORKER_MIN_BYTES; it is its only client.
- Its first frame on stdout is empty: it is ready (its imports take a few hundred
  milliseconds). Until then big bodies stay on the writer, so no batch waits for the
  worker to start.
- Each request is one frame on the worker's stdin: an 8-byte little-endian length, then
  the raw request body.
- Each answer is one frame on its stdout, the same framing around a pickle of
  ``decode.DecodedBatch`` (valid), an ``errors.HomeIQError`` (InvalidJson or
  InvalidBatch: refused, with the message the client gets), or None (the worker failed
  on it: the writer decodes it). Answers come in the order of the requests, so the add-on
  matches them first in, first out. The writer unpickles an answer when its batch's
  turn comes (``worker_child.Pickled``). (Pickles only pass between the add-on and the
  child it started.)
- The worker leaves when no big body came for IDLE_S: its memory (~28 MB after big
  bodies, a Python of its own) is not kept for a burst that happens once a day, after an
  outage. The next big body starts a new one, as the first did.
- One sender thread writes the requests with blocking writes (the GIL is released for
  the whole body, where the event loop would take a turn per pipe-full); the event loop
  reads the answers. Both pipes are widened to 1 MiB.
- Whatever goes wrong with the worker costs speed, never data: an error in it answers
  None; its death (killed for memory, say) answers None to every request in flight, and
  the next big body starts a new worker. Either way the writer decodes the body itself.
- The worker leaves when its stdin closes: when it was idle, when the add-on stops, or
  dies, even by SIGKILL.

Small bodies (a home's normal trickle) stay on the writer: sending them costs more than
decoding them, and a home that never sends a big batch never starts the worker.
(multiprocessing's pool would add a resource-tracker process, 13 MB, and two threads.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
import contextlib
import logging
import os
from pathlib import Path
import sys
from typing import Final

from . import worker_child
from .worker_child import HEADER as _HEADER, Pickled

_LOGGER = logging.getLogger(__name__)

# ~100 events of a typical enriched state change; below this the writer decodes.
WORKER_MIN_BYTES: Final = 64 * 1024
_STOP_TIMEOUT_S: Final = 10.0
_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])  # holds homeiq_addon/
# Seconds without a big body after which the worker leaves (the environment variable is
# for tests and measurements).
IDLE_S: Final = float(os.environ.get("HOMEIQ_DECODE_WORKER_IDLE_S", "30"))


def _write_all(fd: int, parts: tuple[bytes, ...]) -> None:
    """Blocking: every byte of every part, in order (runs on the sender thread)."""
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


class DecodeWorker:
    """The event loop's side: sends big bodies to the worker, which it starts on demand."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self._idle_s = idle_s
        self._proc: asyncio.subprocess.Process | None = None
        self._to_child: int | None = None  # blocking write end of the worker's stdin
        self._ready = asyncio.Event()  # its first, empty frame came
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="homeiq-worker-sender")
        self._starting: asyncio.Task[None] | None = None
        self._waiting: deque[asyncio.Future[Pickled | None]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._last_used = 0.0  # the event loop's time of the last big body
        self._idle_check: asyncio.TimerHandle | None = None
        self._leaving = False  # told to leave: its end is no failure
        self._closing = False

    async def decode(self, body: bytes) -> Pickled | None:
        """The worker's answer for a big body; None means the writer decodes it itself."""
        if len(body) < WORKER_MIN_BYTES or self._closing:
            return None
        loop = asyncio.get_running_loop()
        self._last_used = loop.time()
        if self._proc is None:
            if self._starting is None:
                self._starting = loop.create_task(self._start(), name="homeiq-worker-start")
            return None  # the writer decodes this one: nothing waits for the start
        fd = self._to_child
        if not self._ready.is_set() or fd is None:  # still starting, or leaving
            return None
        parts = (_HEADER.pack(len(body)), body)
        answer: asyncio.Future[Pickled | None] = loop.create_future()
        # Enqueued in the same order as sent (one sender thread, no await in between):
        # answers come back in this order.
        self._waiting.append(answer)
        sent = loop.run_in_executor(self._sender, _write_all, fd, parts)
        with contextlib.suppress(OSError):  # the worker died: the reader answers None
            await sent
        return await answer

    async def _start(self) -> None:
        path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        child_stdin, to_child = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", worker_child.__name__,
                stdin=child_stdin, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": path},
            )  # fmt: skip
        except OSError:
            os.close(to_child)
            _LOGGER.exception("cannot start the decode worker; the writer decodes")
            return
        finally:
            os.close(child_stdin)
            self._starting = None
        self._proc, self._to_child = proc, to_child
        self._leaving = False
        self._last_used = asyncio.get_running_loop().time()  # idle from its start on
        self._reader = asyncio.create_task(self._read(proc), name="homeiq-worker-reader")
        if self._closing:  # close() came while it started
            self._release_pipe()

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            header = await proc.stdout.readexactly(_HEADER.size)  # the empty "ready" frame
            await proc.stdout.readexactly(_HEADER.unpack(header)[0])
            self._ready.set()
            _LOGGER.debug("decode worker %d ready", proc.pid)
            if self._idle_check is not None:  # left over from a worker that died
                self._idle_check.cancel()
            self._check_idle()
            while True:
                header = await proc.stdout.readexactly(_HEADER.size)
                payload = await proc.stdout.readexactly(_HEADER.unpack(header)[0])
                answer = self._waiting.popleft()
                if not answer.done():  # the request may have been cancelled
                    answer.set_result(Pickled(payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            if self._leaving:
                _LOGGER.debug("decode worker %d left after %.0f s idle", proc.pid, self._idle_s)
            elif not self._closing:
                _LOGGER.warning("the decode worker process ended; a new one will start")
        finally:
            self._proc = None
            self._ready.clear()
            self._release_pipe()
            while self._waiting:
                answer = self._waiting.popleft()
                if not answer.done():
                    answer.set_result(None)

    async def ready(self) -> bool:
        """Start the worker unless it runs, and wait until it takes bodies (or failed to
        start: False). For tests and tools; ``decode`` never waits for it."""
        if self._proc is None and self._starting is None and not self._closing:
            self._starting = asyncio.create_task(self._start(), name="homeiq-worker-start")
        if self._starting is not None:
            await self._starting
        if self._proc is None:
            return False
        waiting = asyncio.create_task(self._ready.wait())
        assert self._reader is not None
        await asyncio.wait((waiting, self._reader), return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        return self._ready.is_set()

    def _check_idle(self) -> None:
        """Tell an idle worker to leave; else look again when it would be idle."""
        self._idle_check = None
        if self._proc is None or self._leaving or self._closing:
            return
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self._last_used
        if self._waiting or idle_for < self._idle_s:
            self._idle_check = loop.call_later(max(self._idle_s - idle_for, 0.05), self._check_idle)
            return
        self._leaving = True
        self._release_pipe()  # end of file: the worker leaves, the reader sees it go

    def _release_pipe(self) -> None:
        """Close the worker's stdin after whatever the sender thread is still writing."""
        fd, self._to_child = self._to_child, None
        if fd is not None:
            self._sender.submit(os.close, fd)

    async def close(self) -> None:
        """End the worker once the requests in flight are answered."""
        self._closing = True
        if self._idle_check is not None:
            self._idle_check.cancel()
        if self._starting is not None:
            await self._starting
        proc = self._proc
        if proc is not None:
            self._release_pipe()  # end of file: the worker leaves
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if self._reader is not None:
                await self._reader
        self._sender.shutdown(wait=True)
