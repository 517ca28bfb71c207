"""GET /api/v1/stats and /api/v1/event-rate, from pre-aggregated counters."""

from __future__ import annotations

from typing import Any

from .store.db import Store


async def recent_alerts(store: Store) -> list[dict[str, Any]]:
    """Alerts over the last 15 minutes (health turns degraded while any fires)."""
    return []
