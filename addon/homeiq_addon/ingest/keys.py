"""The ingest parts other routes reach through the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from .service import Ingestor
from .worker import DecodeWorker

INGESTOR = web.AppKey("homeiq_ingestor", Ingestor)
DECODE_WORKER = web.AppKey("homeiq_decode_worker", DecodeWorker)
