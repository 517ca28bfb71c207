"""GET /api/v1/ws: live stream of committed events and the event rate."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class Hub:
    """Fan-out of committed events to the connected WebSockets."""

    def __init__(self) -> None:
        self.clients: set[web.WebSocketResponse] = set()

    def publish_events(self, events: list[dict[str, Any]]) -> None:
        if not self.clients:
            return
