"""The ingest parts other routes reach through the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from .service import Ingestor
from .worker import Preparer

INGESTOR = web.AppKey("homeiq_ingestor", Ingestor)
PREPARER = web.AppKey("homeiq_preparer", Preparer)
