"""POST /api/v1/ingest: validate, commit in one transaction, then acknowledge."""

from __future__ import annotations

from functools import partial
import logging
import sqlite3
import time

from aiohttp import web
import orjson

from .context import HUB, INGESTOR, RUNTIME, STORE
from .responses import error, json_response
from .schema import BatchInvalid, check_batch

_LOGGER = logging.getLogger(__name__)


def _record_reject(conn: sqlite3.Connection, minute: int) -> None:
    conn.execute(
        "INSERT INTO batch_rejects VALUES (?, 1) ON CONFLICT (minute) DO UPDATE SET n = n + 1",
        (minute,),
    )


async def _reject(request: web.Request, status: int, code: str, message: str) -> web.Response:
    # Counted for the error-rate alerts; nothing of the batch itself is written.
    await request.app[STORE].write(partial(_record_reject, minute=int(time.time() // 60)))
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
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        return await _reject(request, 400, "invalid_json", f"body: malformed JSON: {err}")
    try:
        batch = check_batch(obj)
    except BatchInvalid as err:
        return await _reject(request, 422, "invalid_batch", err.message)
    ingestor = request.app[INGESTOR]
    ack = await request.app[STORE].write(
        partial(ingestor.write_batch, batch=batch, started=started)
    )
    if not ack.duplicate:
        request.app[RUNTIME].last_ingest = time.time()
        request.app[HUB].publish_events(batch["events"])
    return json_response(ack.as_dict())


def _too_large(limit: int) -> str:
    return f"body: larger than the {limit // (1024 * 1024)} MB limit (max_body_mb)"


STORE_LIMIT = web.AppKey("homeiq_body_limit", int)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/ingest", ingest)
