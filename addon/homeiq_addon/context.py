"""What the routes share, stored on the aiohttp application under typed keys."""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING

from aiohttp import web

from .config import Config
from .store.db import Store
from .store.ingest import Ingestor

if TYPE_CHECKING:
    from .ws import Hub


@dataclass(slots=True)
class Runtime:
    """Process state: identity and what happened since start."""

    token: str
    instance_id: str
    started: float = field(default_factory=time.monotonic)
    last_ingest: float | None = None  # epoch seconds of the last accepted batch


CONFIG = web.AppKey("homeiq_config", Config)
STORE = web.AppKey("homeiq_store", Store)
INGESTOR = web.AppKey("homeiq_ingestor", Ingestor)
RUNTIME = web.AppKey("homeiq_runtime", Runtime)
HUB: web.AppKey[Hub] = web.AppKey("homeiq_hub")
