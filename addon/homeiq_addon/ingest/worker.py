"""The decode worker process: big bodies in, decoded batches out.

Why: the writer thread is ingest's one serial resource, and decoding a body (msgspec,
the contract's rules, the id-free part of the rows: decode.py) was about half of its
work per event, all of it holding the GIL. Big bodies are therefore decoded in a worker
process on the other core; the writer only gives the values their ids and inserts
(rows.py). Ids are the writer's alone: the worker knows none.

The protocol, all of it:
- One child process, ``python -m homeiq_addon.ingest.worker``, started by the add-on on
  the first body of at least WORKER_MIN_BYTES; it is its only client.
- Each request is one frame on the worker's stdin: an 8-byte little-endian length, then
  the raw request body.
- Each answer is one frame on its stdout, the same framing around a pickle of
  ``decode.DecodedBatch`` (valid), an ``errors.HomeIQError`` (InvalidJson or
  InvalidBatch: refused, with the message the client gets), or None (the worker failed
  on it: the writer decodes it). Answers come in the order of the requests, so the add-on
  matches them first in, first out. (Pickles only pass between the add-on and the child
  it started.)
- One sender thread writes the requests with blocking writes (the GIL is released for
  the whole body, where the event loop would take a turn per pipe-full); the event loop
  reads the answers. Both pipes are widened to 1 MiB.
- Whatever goes wrong with the worker costs speed, never data: an error in it answers
  None; its death (killed for memory, say) answers None to every request in flight, and
  the next big body starts a new worker. Either way the writer decodes the body itself.
- The worker leaves when its stdin closes: when the add-on stops, or dies, even by
  SIGKILL.

Small bodies (a home's normal trickle) stay on the writer: sending them costs more than
decoding them, and a home that never sends a big batch never starts the worker.
(multiprocessing's pool would add a resource-tracker process, 13 MB, and two threads.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
import contextlib
import fcntl
import logging
import os
from pathlib import Path
import pickle
import signal
import struct
import sys
from typing import Any, BinaryIO, Final

from ..errors import HomeIQError
from .decode import DecodedBatch, decode_batch

type Answer = DecodedBatch | HomeIQError | None

_LOGGER = logging.getLogger(__name__)

# ~100 events of a typical enriched state change; below this the writer decodes.
WORKER_MIN_BYTES: Final = 64 * 1024
_HEADER: Final = struct.Struct("<Q")
_STOP_TIMEOUT_S: Final = 10.0
_PIPE_BYTES: Final = 1 << 20  # Linux's default limit for unprivileged processes
_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])  # holds homeiq_addon/


def main() -> None:
    """The worker: answer every request on stdin with one frame on stdout, until EOF."""
    # Ctrl-C in a terminal reaches the whole process group; the add-on ends us by
    # closing stdin once its requests are done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries frames only
    for pipe in (source, sink):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    while (body := _read_frame(source)) is not None:
        result: Answer
        try:
            result = decode_batch(body)
        except HomeIQError as err:
            result = err
        except Exception:
            _LOGGER.exception("decoding a batch failed; the add-on decodes it itself")
            result = None
        answer = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        sink.write(_HEADER.pack(len(answer)))
        sink.write(answer)
        sink.flush()


def _read_frame(source: BinaryIO) -> bytes | None:
    header = source.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size: int = _HEADER.unpack(header)[0]
    data = source.read(size)
    return data if len(data) == size else None


def _write_all(fd: int, parts: tuple[bytes, ...]) -> None:
    """Blocking: every byte of every part, in order (runs on the sender thread)."""
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


class DecodeWorker:
    """The event loop's side: sends big bodies to the worker, which it starts on demand."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._to_child: int | None = None  # blocking write end of the worker's stdin
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="homeiq-worker-sender")
        self._starting = asyncio.Lock()
        self._waiting: deque[asyncio.Future[Answer]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    async def decode(self, body: bytes) -> Answer:
        """The worker's answer for a big body; None means the writer decodes it itself."""
        if len(body) < WORKER_MIN_BYTES or self._closing:
            return None
        if self._proc is None and not await self._start():
            return None
        fd = self._to_child
        if fd is None:  # it ended while we waited for it to start
            return None
        parts = (_HEADER.pack(len(body)), body)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        # Enqueued in the same order as sent (one sender thread, no await in between):
        # answers come back in this order.
        self._waiting.append(answer)
        sent = loop.run_in_executor(self._sender, _write_all, fd, parts)
        with contextlib.suppress(OSError):  # the worker died: the reader answers None
            await sent
        return await answer

    async def _start(self) -> bool:
        async with self._starting:
            if self._proc is not None:
                return True
            path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
            child_stdin, to_child = os.pipe()
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", __name__,
                    stdin=child_stdin, stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": path},
                )  # fmt: skip
            except OSError:
                os.close(to_child)
                _LOGGER.exception("cannot start the decode worker; the writer decodes")
                return False
            finally:
                os.close(child_stdin)
            self._proc, self._to_child = proc, to_child
            self._reader = asyncio.create_task(self._read(proc), name="homeiq-worker-reader")
            return True

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                header = await proc.stdout.readexactly(_HEADER.size)
                payload = await proc.stdout.readexactly(_HEADER.unpack(header)[0])
                result: Any = pickle.loads(payload)  # noqa: S301 (our own child's)
                answer = self._waiting.popleft()
                if not answer.done():  # the request may have been cancelled
                    answer.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._closing:
                _LOGGER.warning("the decode worker process ended; a new one will start")
        finally:
            self._proc = None
            self._release_pipe()
            while self._waiting:
                answer = self._waiting.popleft()
                if not answer.done():
                    answer.set_result(None)

    def _release_pipe(self) -> None:
        """Close the worker's stdin after whatever the sender thread is still writing."""
        fd, self._to_child = self._to_child, None
        if fd is not None:
            self._sender.submit(os.close, fd)

    async def close(self) -> None:
        """End the worker once the requests in flight are answered."""
        self._closing = True
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


if __name__ == "__main__":
    main()
