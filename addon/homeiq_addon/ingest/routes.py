"""POST /api/v1/ingest: validate, commit in one transaction, then acknowledge."""

from __future__ import annotations

from functools import partial
import logging
import time
from typing import NoReturn

from aiohttp import web

from ..errors import BodyLost, HomeIQError, UnsupportedEncoding
from ..live.stream import HUB
from ..server.body import content_coding, read_body, too_large
from ..server.keys import STORE
from ..server.openapi import add_paths
from ..server.responses import Handler, struct_response
from .keys import DECODE_WORKER, INGEST_SLOTS_KEY, INGESTOR
from .openapi_paths import PATHS, STRUCTS
from .outcomes import record_reject

_LOGGER = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"


async def ingest(request: web.Request) -> web.Response:
    started = time.perf_counter()
    limit = request.app[STORE_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        await _refused(request, too_large(limit))
    async with request.app[INGEST_SLOTS_KEY]:
        try:
            body = await read_body(request, limit)
        except BodyLost:
            raise  # the client's connection failed, not its batch
        except HomeIQError as err:
            await _refused(request, err)
        # Big bodies are decoded in the worker process; the rest on the writer thread,
        # not on this loop (see worker.py and service.py).
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
    return struct_response(result.answer())


async def _refused(request: web.Request, err: HomeIQError) -> NoReturn:
    """Refused for its body: counted for the error-rate alerts; nothing of the batch
    itself is written."""
    await request.app[STORE].write(record_reject)
    _LOGGER.debug("rejected batch: %s", err.message)
    raise err


STORE_LIMIT = web.AppKey("homeiq_body_limit", int)


@web.middleware
async def plain_body_elsewhere(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only ingest inflates a body; any other route would take compressed bytes for JSON."""
    coding = content_coding(request)
    if coding != "identity" and request.body_exists and request.path != INGEST_PATH:
        raise UnsupportedEncoding(
            f"Content-Encoding {coding!r}: only POST {INGEST_PATH} takes a compressed body"
        )
    return await handler(request)


def setup(app: web.Application) -> None:
    app.router.add_post(INGEST_PATH, ingest)
    add_paths(app, PATHS, STRUCTS)
