"""Synthetic history spanning months, and a small HTTP client, for the retention tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
import itertools
from typing import Any

import aiohttp
import orjson

from tests.conftest import AddonProcess

# Simulated time: the data lives in the first months of 2026 and the job runs with a
# "now" at the end of it (accepted in --dev mode), so nothing depends on the wall clock.
T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)


def event(
    t: datetime,
    entity_id: str | None,
    state: str | None = None,
    *,
    numeric: float | None = None,
    event_type: str = "state_changed",
) -> dict[str, Any]:
    n = next(_ids)
    ev: dict[str, Any] = {
        "time_fired": t.isoformat(timespec="microseconds"),
        "event_type": event_type,
        "origin": "LOCAL",
        "context_id": f"01JD{n:022d}",
    }
    if entity_id is not None:
        ev.update(entity_id=entity_id, domain=entity_id.split(".")[0], state=state)
        if numeric is not None:
            ev["numeric_value"] = numeric
    else:
        ev["data"] = {"n": n}
    return ev


def series(
    entity_id: str, start: datetime, days: float, step: timedelta, states: list[str] | None = None
) -> list[dict[str, Any]]:
    """Events every ``step``: numbers 0, 1, 2, ... or cycling through ``states``."""
    out = []
    t, i = start, 0
    while t < start + timedelta(days=days):
        if states is None:
            out.append(event(t, entity_id, str(float(i % 50)), numeric=float(i % 50)))
        else:
            out.append(event(t, entity_id, states[i % len(states)]))
        t, i = t + step, i + 1
    return out


class Api:
    """JSON calls to the add-on; the ingress port needs no token in --dev mode."""

    def __init__(self, server: AddonProcess, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        async with self.session.request(
            method, f"{self.server.url}{path}", data=data, headers=self.server.headers
        ) as resp:
            text = await resp.read()
            return resp.status, (orjson.loads(text) if text else None)

    async def ingest(self, events: Iterable[dict[str, Any]], size: int = 5000) -> int:
        events = list(events)
        for i in range(0, len(events), size):
            body = {
                "batch_id": f"b{next(_ids)}",
                "source": {"instance_id": "test", "integration_version": "0.1.0"},
                "events": events[i : i + size],
            }
            status, answer = await self.call("POST", "/api/v1/ingest", body)
            assert status == 200, answer
        return len(events)

    async def run(self, now: datetime, *, dry_run: bool) -> dict[str, Any]:
        status, report = await self.call(
            "POST", "/api/v1/retention/run", {"dry_run": dry_run, "now": now.isoformat()}
        )
        assert status == 200, report
        assert report["status"] == "ok", report
        return dict(report)

    async def history(self, entity_id: str, **params: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B")
        status, body = await self.call("GET", f"/api/v1/history/{entity_id}?{query}")
        assert status == 200, body
        return list(body["points"])


def per_policy(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {p.pop("name"): p for p in (dict(p) for p in report["policies"])}
