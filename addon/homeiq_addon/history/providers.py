"""Where /api/v1/history finds the resolutions other capabilities answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..store.db import Store

# History at a resolution, answered by another part of the service (retention's rollups):
# provider(store, entity_id, start_us, end_us, limit) -> points. "raw" may be provided too,
# to fall back to rollups where raw events were purged; otherwise raw reads events.
type HistoryProvider = Callable[[Store, str, int, int, int], Awaitable[list[dict[str, Any]]]]
HISTORY = web.AppKey("homeiq_history", dict[str, HistoryProvider])
