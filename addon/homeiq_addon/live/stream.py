"""GET /api/v1/ws: live stream of committed events and of the ingest rate.

Messages from the server: ``{"type": "rate", ...event-rate fields}`` every second and
``{"type": "events", "events": [...]}`` after each committed batch. A client may send
``{"type": "subscribe", "entity_id": [...], "domain": [...], "event_type": [...]}`` to
receive only matching events. A client that does not keep up loses event messages
(counted in ``dropped`` of the next rate message) rather than slowing ingest down.
"""

from __future__ import annotations

import asyncio
from collections import deque
import contextlib
import time
from typing import Any, Final

from aiohttp import WSMsgType, web

from ..server.openapi import add_paths, error_answer, operation

WINDOW_S: Final = 60.0
_QUEUE: Final = 256
_FILTER_KEYS: Final = ("entity_id", "domain", "event_type")


class RateMeter:
    """Events accepted over the last minute (by arrival time)."""

    def __init__(self) -> None:
        self._marks: deque[tuple[float, int]] = deque()

    def add(self, count: int) -> None:
        self._marks.append((time.monotonic(), count))

    def rates(self) -> dict[str, Any]:
        """Events per second and per minute over the last WINDOW_S, now."""
        horizon = time.monotonic() - WINDOW_S
        while self._marks and self._marks[0][0] < horizon:
            self._marks.popleft()
        total = sum(n for _, n in self._marks)
        return {
            "events_per_second": round(total / WINDOW_S, 3),
            "events_per_minute": total,
            "window_seconds": int(WINDOW_S),
        }


class _Client:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(_QUEUE)
        self.filters: dict[str, frozenset[str]] = {}
        self.dropped = 0

    def wants(self, event: dict[str, Any]) -> bool:
        return all(event.get(key) in allowed for key, allowed in self.filters.items())


class Hub:
    """Fan-out of committed events to the connected WebSockets."""

    def __init__(self) -> None:
        self.clients: set[_Client] = set()
        self.meter = RateMeter()

    def publish_events(self, events: list[dict[str, Any]], count: int | None = None) -> None:
        # ``count``: the fast ingest path hands no event dicts over when nobody listens.
        self.meter.add(len(events) if count is None else count)
        if not events:
            return
        for client in self.clients:
            try:
                client.queue.put_nowait(events)
            except asyncio.QueueFull:
                client.dropped += len(events)


def _filters(message: Any) -> dict[str, frozenset[str]] | None:
    if not isinstance(message, dict) or message.get("type") != "subscribe":
        return None
    out: dict[str, frozenset[str]] = {}
    for key in _FILTER_KEYS:
        values = message.get(key)
        if isinstance(values, str):
            values = [values]
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[key] = frozenset(values)
    return out


HUB = web.AppKey("homeiq_hub", Hub)


async def _reader(client: _Client) -> None:
    async for msg in client.ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            filters = _filters(msg.json())
        except (ValueError, RecursionError):
            # Not JSON, or nested deeper than the parser goes: the same clear answer.
            filters = None
        if filters is None:
            await client.ws.send_json(
                {"type": "error", "message": 'expected {"type": "subscribe", ...}'}
            )
            continue
        client.filters = filters
        await client.ws.send_json(
            {"type": "subscribed", **{k: sorted(v) for k, v in filters.items()}}
        )


async def stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    hub = request.app[HUB]
    client = _Client(ws)
    hub.clients.add(client)
    reader = asyncio.create_task(_reader(client))
    next_rate = time.monotonic()
    try:
        while not ws.closed and not reader.done():
            timeout = max(0.0, next_rate - time.monotonic())
            try:
                events = await asyncio.wait_for(client.queue.get(), timeout)
            except TimeoutError:
                await ws.send_json({"type": "rate", **hub.meter.rates(), "dropped": client.dropped})
                next_rate = time.monotonic() + 1.0
                continue
            wanted = [e for e in events if client.wants(e)] if client.filters else events
            if wanted:
                await ws.send_json({"type": "events", "events": wanted})
    except ConnectionResetError:
        pass
    finally:
        hub.clients.discard(client)
        reader.cancel()
        # The client may be gone while the reader answered it.
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await reader
        await ws.close()
    return ws


PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/ws": {
        "get": operation(
            "WebSocket: {type: rate} every second, {type: events} per batch",
            {
                "101": {"description": "switching protocols"},
                "400": error_answer("not a WebSocket handshake (no Upgrade header)"),
            },
        )
    },
}


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/ws", stream)
    add_paths(app, PATHS)
