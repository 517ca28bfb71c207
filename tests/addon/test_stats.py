"""Stats, alerts, event rate, health and the live WebSocket stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
import sqlite3

import aiohttp

from tests.addon.factory import batch, service_event, state_event
from tests.addon.test_ingest import get, post
from tests.conftest import AddonProcess


def _recent(n: int, entity: str = "sensor.t") -> list[dict[str, object]]:
    start = datetime.now(UTC) - timedelta(minutes=5)
    return [state_event(i, at=start, entity_id=entity) for i in range(n)]


async def test_stats_count_what_was_ingested(addon_server: AddonProcess) -> None:
    await post(addon_server, batch(_recent(30) + _recent(10, "sensor.other")))
    now = datetime.now(UTC) - timedelta(minutes=2)
    await post(addon_server, batch([service_event(0, time_fired=now.isoformat())]))
    for period in ("15m", "1h", "24h", "7d"):
        status, stats = await get(addon_server, f"/api/v1/stats?period={period}")
        assert status == 200
        metrics = stats["metrics"]
        assert metrics["events"] == 41, period
        assert metrics["by_event_type"] == {"state_changed": 40, "call_service": 1}
        assert metrics["by_domain"] == {"sensor": 40}
        assert metrics["top_entities"][:2] == [
            {"entity_id": "sensor.t", "count": 30},
            {"entity_id": "sensor.other", "count": 10},
        ]
        assert metrics["batches_accepted"] == 2
        assert metrics["batches_rejected"] == 0
        assert metrics["error_rate"] == 0
        assert metrics["success_rate"] == 100
        assert metrics["ingest_latency_ms"]["p50"] is not None
        assert sum(t["events"] for t in stats["trends"]) == 41
        assert stats["alerts"] == []
        assert stats["store"]["events_stored"] == 41
        assert stats["store"]["db_size_bytes"] > 0
    status, _ = await get(addon_server, "/api/v1/stats?period=1y")
    assert status == 400


async def test_rejections_raise_alerts_and_degrade_health(addon_server: AddonProcess) -> None:
    await post(addon_server, batch(_recent(3)))
    # 1 accepted, 1 rejected: 50% error rate.
    await post(addon_server, b"{not json")
    _, stats = await get(addon_server, "/api/v1/stats?period=15m")
    assert stats["metrics"]["batches_rejected"] == 1
    assert stats["metrics"]["error_rate"] == 50
    alerts = {(a["metric"], a["level"]) for a in stats["alerts"]}
    assert alerts == {("error_rate", "error"), ("success_rate", "error")}
    error_alert = next(a for a in stats["alerts"] if a["metric"] == "error_rate")
    assert error_alert["threshold"] == 5
    assert error_alert["value"] == 50
    _, health = await get(addon_server, "/api/v1/health")
    assert health["status"] == "degraded"
    # 18 good batches later the rate is 1 in 20 = 5%: a warning (above 2%), not an error
    # (the error is "above 5%"), and a success rate of 95% is not "below 95%".
    for _ in range(18):
        await post(addon_server, batch(_recent(1)))
    _, stats = await get(addon_server, "/api/v1/stats?period=15m")
    assert stats["metrics"]["error_rate"] == 5
    alerts = {(a["metric"], a["level"]) for a in stats["alerts"]}
    assert alerts == {("error_rate", "warning")}


async def test_health_and_rate(addon_server: AddonProcess) -> None:
    status, health = await get(addon_server, "/api/v1/health")
    assert status == 200
    assert health["status"] == "healthy"
    assert health["api_version"] == 1
    assert health["instance_id"] == (addon_server.data_dir / "instance_id").read_text().strip()
    assert health["last_ingest"] is None
    await post(addon_server, batch(_recent(12)))
    _, health = await get(addon_server, "/api/v1/health")
    assert health["events_stored"] == 12
    assert health["last_ingest"] is not None
    assert health["schema_version"] >= 1
    _, rate = await get(addon_server, "/api/v1/event-rate")
    minutes = rate.pop("minutes")
    assert rate == {"events_per_second": 0.2, "events_per_minute": 12, "window_seconds": 60}
    # The last hour per minute (by when events fired), oldest first: the panel's chart.
    assert len(minutes) == 60
    assert sum(m["events"] for m in minutes) == 12
    assert [m["start"] for m in minutes] == sorted(m["start"] for m in minutes)
    # The instance id survives restarts (it is the integration's unique id).
    addon_server.stop()
    addon_server.start()
    _, again = await get(addon_server, "/api/v1/health")
    assert again["instance_id"] == health["instance_id"]


async def test_websocket_streams_events_and_rate(addon_server: AddonProcess) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{addon_server.url}/api/v1/ws", headers=addon_server.headers) as ws,
    ):
        first = await ws.receive_json(timeout=5)
        assert first["type"] == "rate"
        await ws.send_json({"type": "subscribe", "entity_id": ["sensor.wanted"]})
        while (msg := await ws.receive_json(timeout=5))["type"] != "subscribed":
            pass
        assert msg["entity_id"] == ["sensor.wanted"]
        await post(addon_server, batch(_recent(3, "sensor.other") + _recent(2, "sensor.wanted")))
        while (msg := await ws.receive_json(timeout=5))["type"] != "events":
            pass
        assert [e["entity_id"] for e in msg["events"]] == ["sensor.wanted"] * 2
        await ws.send_str("nonsense")
        while (msg := await ws.receive_json(timeout=5))["type"] != "error":
            pass
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{addon_server.url}/api/v1/ws") as resp:
            assert resp.status == 401
        await asyncio.sleep(0)


async def test_unreadable_store_is_unhealthy(addon_server: AddonProcess) -> None:
    """A store the service cannot read: 503 for the container's health check, and the
    full answer says so too (and still answers, so the owner can see why)."""
    await post(addon_server, batch(_recent(3)))
    # Another writer damages the database the way a bad restore or a full disk could.
    conn = sqlite3.connect(addon_server.data_dir / "homeiq.db")
    with conn:
        conn.execute("DROP TABLE counters")
    conn.close()

    async with aiohttp.ClientSession() as session:
        url = f"{addon_server.url}/api/v1/health?minimal=1"
        async with session.get(url) as resp:  # no token: the Docker HEALTHCHECK form
            assert resp.status == 503
            assert await resp.json() == {"status": "unhealthy"}
    status, health = await get(addon_server, "/api/v1/health")
    assert status == 503
    assert health["status"] == "unhealthy"
    assert health["events_stored"] is None
