"""What the routes share, stored on the aiohttp application under typed keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import Config
from ..ingest.service import Ingestor
from ..ingest.worker import Preparer
from ..store.db import Store

if TYPE_CHECKING:
    from ..live.stream import Hub


@dataclass(slots=True)
class Runtime:
    """Process state: identity and what happened since start."""

    token: str
    instance_id: str
    started: float = field(default_factory=time.monotonic)


CONFIG = web.AppKey("homeiq_config", Config)
STORE = web.AppKey("homeiq_store", Store)
INGESTOR = web.AppKey("homeiq_ingestor", Ingestor)
PREPARER = web.AppKey("homeiq_preparer", Preparer)
RUNTIME = web.AppKey("homeiq_runtime", Runtime)
HUB: web.AppKey[Hub] = web.AppKey("homeiq_hub")

# History at a resolution, answered by another part of the service (retention's rollups):
# provider(store, entity_id, start_us, end_us, limit) -> points. "raw" may be provided too,
# to fall back to rollups where raw events were purged; otherwise raw reads events.
type HistoryProvider = Callable[[Store, str, int, int, int], Awaitable[list[dict[str, Any]]]]
HISTORY = web.AppKey("homeiq_history", dict[str, HistoryProvider])
