"""POST /api/v1/ingest: validate, commit in one transaction, then acknowledge."""

from __future__ import annotations

from functools import partial
import logging
import time

from aiohttp import web

from .context import HUB, INGESTOR, PREPARER, STORE
from .responses import error, json_response
from .store.acks import Rejected, record_reject

_LOGGER = logging.getLogger(__name__)


async def _reject(request: web.Request, status: int, code: str, message: str) -> web.Response:
    # Counted for the error-rate alerts; nothing of the batch itself is written.
    await request.app[STORE].write(record_reject)
    _LOGGER.debug("rejected batch: %s", message)
    return error(status, code, message)


async def ingest(request: web.Request) -> web.Response:
    started = time.perf_counter()
    limit = request.app[STORE_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        return await _reject(request, 413, "body_too_large", _too_large(limit))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return await _reject(request, 413, "body_too_large", _too_large(limit))
    ingestor = request.app[INGESTOR]
    # Big bodies are decoded in the worker process; the rest on the writer thread, not
    # on this loop (see store/prepare.py and store/ingest.py).
    prepared = await request.app[PREPARER].prepare(body)
    result = await request.app[STORE].write(
        partial(ingestor.ingest_prepared, prepared=prepared, body=body, started=started)
    )
    if isinstance(result, Rejected):
        _LOGGER.debug("rejected batch: %s", result.message)
        return error(result.status, result.code, result.message)
    if not result.duplicate:
        hub = request.app[HUB]
        hub.publish_events(result.events_for_stream(bool(hub.clients)), result.accepted)
    return json_response(result.as_dict())


def _too_large(limit: int) -> str:
    return f"body: larger than the {limit // (1024 * 1024)} MB limit (max_body_mb)"


STORE_LIMIT = web.AppKey("homeiq_body_limit", int)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/ingest", ingest)
