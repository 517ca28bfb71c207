"""POST /api/v1/ingest: validate, commit in one transaction, then acknowledge."""

from __future__ import annotations

from functools import partial
import logging
import time

from aiohttp import web

from ..errors import HomeIQError
from ..live.stream import HUB
from ..server.body import BodyRefused, content_coding, read_body, too_large
from ..server.keys import STORE
from ..server.responses import Handler, error, json_response
from .acks import record_reject
from .keys import DECODE_WORKER, INGESTOR

_LOGGER = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"


async def _reject(request: web.Request, status: int, code: str, message: str) -> web.Response:
    # Counted for the error-rate alerts; nothing of the batch itself is written.
    await request.app[STORE].write(record_reject)
    _LOGGER.debug("rejected batch: %s", message)
    return error(status, code, message)


async def ingest(request: web.Request) -> web.Response:
    started = time.perf_counter()
    limit = request.app[STORE_LIMIT]
    try:
        if request.content_length is not None and request.content_length > limit:
            raise too_large(limit)
        body = await read_body(request, limit)
    except BodyRefused as err:
        return await _reject(request, err.status, err.code, err.message)
    # Big bodies are decoded in the worker process; the rest on the writer thread, not
    # on this loop (see worker.py and service.py).
    decoded = await request.app[DECODE_WORKER].decode(body)
    result = await request.app[STORE].write(
        partial(request.app[INGESTOR].ingest, body=body, decoded=decoded, started=started)
    )
    if isinstance(result, HomeIQError):
        _LOGGER.debug("rejected batch: %s", result.message)
        raise result
    if not result.duplicate:
        hub = request.app[HUB]
        hub.publish_events(result.events_for_stream(bool(hub.clients)), result.accepted)
    return json_response(result.as_dict())


STORE_LIMIT = web.AppKey("homeiq_body_limit", int)


@web.middleware
async def plain_body_elsewhere(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only ingest inflates a body; any other route would take compressed bytes for JSON."""
    coding = content_coding(request)
    if coding != "identity" and request.body_exists and request.path != INGEST_PATH:
        return error(
            415,
            "unsupported_encoding",
            f"Content-Encoding {coding!r}: only POST {INGEST_PATH} takes a compressed body",
        )
    return await handler(request)


def setup(app: web.Application) -> None:
    app.router.add_post(INGEST_PATH, ingest)
