"""Request bodies read whole: within the size limit, inflated here when they are compressed.

aiohttp's own inflating is off on every connection (connections.py): it ran while the body
was parsed, before the auth middleware, with no bound, so half a megabyte of gzip could
cost the service half a gigabyte. A route that accepts a compressed body calls read_body,
which runs after authentication, inflates as the bytes arrive, and stops one byte past the
limit that also bounds a plain body.
"""

from __future__ import annotations

from typing import Final
import zlib

from aiohttp import hdrs, web

from ..errors import BodyTooLarge, InvalidEncoding, UnsupportedEncoding

_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
# Content codings read_body inflates, with the zlib window bits of each.
INFLATED: Final = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}
# Inflated a mebibyte at a time: zlib's output buffer for one call can briefly take twice
# what it returns.
_STEP: Final = 1 << 20


def content_coding(request: web.BaseRequest) -> str:
    """The request's Content-Encoding, lower case; "identity" when there is none."""
    return request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower() or "identity"


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"body: larger than the {limit // (1024 * 1024)} MB limit (max_body_mb)")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, inflated if it is gzip or deflate; raises the HomeIQError (413, 415,
    400) that says why it cannot be taken.

    ``limit`` bounds the bytes received and the bytes inflated alike.
    """
    coding = content_coding(request)
    if coding != "identity" and coding not in INFLATED:
        raise UnsupportedEncoding(
            f"Content-Encoding {coding!r}: not supported; send the body uncompressed, "
            "or compressed with gzip or deflate",
        )
    inflater = None if coding == "identity" else _Inflater(coding, limit)
    # A plain body too is read from the stream, not with request.read(): aiohttp keeps
    # what read() returned on the request, and an idle keep-alive connection keeps its
    # last request, so every connection would hold its last body (a megabyte for a big
    # batch) until its next.
    pieces: list[bytes] = []
    received = 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        if inflater is None:
            pieces.append(chunk)
        else:
            inflater.feed(chunk)
    return b"".join(pieces) if inflater is None else inflater.finish()


class _Inflater:
    """One body's inflating: never holds more than ``limit`` + 1 inflated bytes."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        # Pieces joined once at the end: a growing buffer would copy itself as it grows.
        self._pieces: list[bytes] = []
        self._size = 0
        self._zlib: zlib._Decompress | None = None

    def _start(self, first: bytes) -> zlib._Decompress:
        wbits = INFLATED[self._coding]
        # "deflate" means the zlib format; some clients send the bare deflate stream.
        if self._coding == "deflate" and first[0] & 0x0F != 8:
            wbits = -zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> None:
        while data:
            if self._zlib is None or self._zlib.eof:
                if self._zlib is not None and self._coding == "deflate":
                    raise self._corrupt("data after the end of the compressed stream")
                # A gzip body may hold several members, one after another.
                self._zlib = self._start(data)
            try:
                # Never 0 here: that would mean "no bound" to zlib.
                room = min(_STEP, self._limit + 1 - self._size)
                piece = self._zlib.decompress(data, room)
            except zlib.error as err:
                raise self._corrupt(str(err)) from None
            self._pieces.append(piece)
            self._size += len(piece)
            if self._size > self._limit:
                raise too_large(self._limit)
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail

    def finish(self) -> bytes:
        if self._zlib is None or not self._zlib.eof:
            raise self._corrupt("the compressed data ends early")
        return b"".join(self._pieces)

    def _corrupt(self, problem: str) -> InvalidEncoding:
        return InvalidEncoding(
            f"body: not valid {self._coding} data (Content-Encoding: {self._coding}): {problem}",
        )
