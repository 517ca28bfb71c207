"""The aiohttp application and its two sites (API port and ingress port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import logging

from aiohttp import web

from .backups import routes as backups_routes
from .config import Config, load_instance_id, load_token
from .discovery import announce
from .export import routes as export_routes
from .history import routes as history_routes
from .history.providers import HISTORY
from .ingest import routes as ingest_routes
from .ingest.keys import DECODE_WORKER, INGEST_SLOTS, INGEST_SLOTS_KEY, INGESTOR
from .ingest.service import Ingestor
from .ingest.worker import DecodeWorker
from .live import stream
from .live.stream import HUB, Hub
from .mirror import routes as mirror_routes
from .panel import routes as panel_routes
from .retention import routes as retention_routes
from .server import openapi
from .server.auth import auth_middleware
from .server.connections import GuardedRunner, Timeouts
from .server.keys import CONFIG, RUNTIME, STORE, Runtime
from .server.responses import error_middleware
from .status import routes as status_routes
from .store.db import Store
from .store.maintenance import keep_pruning

_LOGGER = logging.getLogger(__name__)


async def build_app(config: Config, store: Store) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, ingest_routes.plain_body_elsewhere],
        # Slightly above the limit so the ingest route can answer 413 itself, in JSON.
        client_max_size=config.max_body_bytes + 1,
    )
    app[CONFIG] = config
    app[STORE] = store
    app[INGESTOR] = Ingestor(store)
    app[DECODE_WORKER] = DecodeWorker()
    app[INGEST_SLOTS_KEY] = asyncio.Semaphore(INGEST_SLOTS)
    app[RUNTIME] = Runtime(
        token=load_token(config.data_dir), instance_id=load_instance_id(config.data_dir)
    )
    app[HUB] = Hub()
    app[HISTORY] = {}
    app[ingest_routes.STORE_LIMIT] = config.max_body_bytes
    # Each capability registers its own routes (and background tasks).
    ingest_routes.setup(app)
    history_routes.setup(app)
    status_routes.setup(app)
    stream.setup(app)
    openapi.setup(app)
    app.cleanup_ctx.append(_pruning)
    retention_routes.setup(app)
    backups_routes.setup(app)
    export_routes.setup(app)
    mirror_routes.setup(app)
    panel_routes.setup(app)
    app.cleanup_ctx.append(_discovery)
    app.cleanup_ctx.append(_decode_worker)
    return app


async def _pruning(app: web.Application) -> AsyncIterator[None]:
    # The store's bookkeeping tables (store/maintenance.py), every ten minutes.
    task = asyncio.create_task(keep_pruning(app[STORE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _decode_worker(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[DECODE_WORKER].close()


async def _discovery(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(announce(app[CONFIG].port, app[RUNTIME].token))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(config: Config, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; then stop taking requests, finish writes, close."""
    store = await Store.open(config.data_dir)
    try:
        app = await build_app(config, store)
    except BaseException:
        await store.close()
        raise
    timeouts = Timeouts(config.header_timeout, config.idle_timeout, config.body_timeout)
    runner = GuardedRunner(app, timeouts=timeouts, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        sites = [web.TCPSite(runner, config.host, config.port)]
        if config.ingress_port is not None:
            sites.append(web.TCPSite(runner, config.host, config.ingress_port))
        for site in sites:
            await site.start()
        _LOGGER.info(
            "HomeIQ store listening on %s:%s (ingress %s), data in %s",
            config.host,
            config.port,
            config.ingress_port,
            config.data_dir,
        )
        await stop.wait()
    finally:
        await runner.cleanup()
        await store.close()
