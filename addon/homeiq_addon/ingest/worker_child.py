"""The decode worker process itself: ``python -m homeiq_addon.ingest.worker_child``.

The protocol and why it exists: worker.py, the add-on's side. This module imports only
what decoding needs (no asyncio, no aiohttp), so the process stays small.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import pickle
import signal
import struct
import sys
from typing import BinaryIO, Final

from ..errors import HomeIQError
from .decode import DecodedBatch, decode_batch

type Answer = DecodedBatch | HomeIQError | None


class Pickled:
    """An answer as the worker sent it, unpickled by the writer when the batch's turn
    comes: a decoded batch waiting for it takes a sixth of the memory pickled (0.3 MB
    for 2,000 events, against 1.6 MB of Python objects)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def load(self) -> Answer:
        answer: Answer = pickle.loads(self.payload)  # noqa: S301 (our own child's)
        return answer


_LOGGER = logging.getLogger(__name__)

HEADER: Final = struct.Struct("<Q")  # each frame's length, before it
_PIPE_BYTES: Final = 1 << 20  # Linux's default limit for unprivileged processes


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
    # Decoding makes no reference cycles (structs, lists, tuples, strings, all freed by
    # their counts): the cyclic collector only walked each batch's young objects again
    # and again, an eighth of the worker's time. Off here; a failure, whose traceback
    # may hold a cycle, is followed by one collection.
    gc.disable()
    sink.write(HEADER.pack(0))  # ready
    sink.flush()
    while (decoded := _answer_next(source, sink)) is not None:
        if not decoded:
            gc.collect()  # the failure is answered and its objects let go


def _answer_next(source: BinaryIO, sink: BinaryIO) -> bool | None:
    """Answer the next request: True if it decoded, False if it failed; None at the end
    of the input.

    A function of its own so that a batch's body, its decoded form and its pickle are
    freed before the next body is read: a loop's variables would keep them (1.9 MB at
    2,000 events) while the next batch is decoded, the worker's busiest moment.
    """
    body = _read_frame(source)
    if body is None:
        return None
    result: Answer
    try:
        result = decode_batch(body)
    except HomeIQError as err:
        result = err
    except Exception:
        _LOGGER.exception("decoding a batch failed; the add-on decodes it itself")
        result = None
    answer = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    sink.write(HEADER.pack(len(answer)))
    sink.write(answer)
    sink.flush()
    return isinstance(result, DecodedBatch)


def _read_frame(source: BinaryIO) -> bytes | None:
    header = source.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    size: int = HEADER.unpack(header)[0]
    data = source.read(size)
    return data if len(data) == size else None


if __name__ == "__main__":
    main()
