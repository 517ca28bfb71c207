"""The ingest parts other routes reach through the aiohttp application."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from .service import Ingestor
from .worker import DecodeWorker

INGESTOR = web.AppKey("homeiq_ingestor", Ingestor)
DECODE_WORKER = web.AppKey("homeiq_decode_worker", DecodeWorker)

# Requests that hold their body in memory at once (read, decoded or waiting for the
# writer). The writer takes one batch at a time; with three in hand the next is always
# decoded when it is free. A request beyond them waits before it reads its body, which
# stays in the socket's buffers: eight clients sending big batches at once no longer
# hold eight bodies and their decoded rows (about 10 MB more at its peak).
INGEST_SLOTS: Final = 3
INGEST_SLOTS_KEY = web.AppKey("homeiq_ingest_slots", asyncio.Semaphore)
