"""The add-on client: every call against the real add-on, odd answers from a plain HTTP peer."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest

from custom_components.homeiq.api import (
    HomeIQAuthError,
    HomeIQClient,
    HomeIQConnectionError,
    HomeIQContractError,
    HomeIQIncompatibleError,
    HomeIQRateLimitedError,
    HomeIQResponseError,
)


async def test_calls_against_the_addon(hass: HomeAssistant, addon_server: Any) -> None:
    """Each client call reaches its route and returns the add-on's JSON."""
    client = HomeIQClient(async_get_clientsession(hass), addon_server.url + "/", addon_server.token)
    assert client.url == addon_server.url
    assert (await client.async_health()).api_version == 1
    assert (await client.async_stats("15m")).period == "15m"
    assert (await client.async_events(limit=5, domain=None))["events"] == []
    assert (await client.async_history("sensor.none", resolution="raw"))["entity_id"] == (
        "sensor.none"
    )
    assert isinstance(await client.async_run_retention(dry_run=True), dict)
    assert isinstance(await client.async_create_backup(), dict)
    with pytest.raises(HomeIQResponseError) as err:
        await client.async_events(limit=0)
    assert err.value.status == 400
    assert err.value.code
    with pytest.raises(HomeIQAuthError):
        await HomeIQClient(async_get_clientsession(hass), addon_server.url, "x").async_health()


@pytest.fixture
async def odd_peer(hass: HomeAssistant, socket_enabled: None) -> Any:
    """An HTTP server answering what a broken proxy or a wrong address might."""

    async def handle(request: web.Request) -> web.Response:
        kind = request.query.get("kind", request.query.get("period", ""))
        if kind == "off_contract":
            return web.json_response({"period": "1h", "generated_at": 5})
        if kind == "text":
            return web.Response(text="<html>not json</html>")
        if kind == "empty":
            return web.Response(body=b"")
        if kind == "500":
            return web.Response(status=500, text="boom")
        if kind == "503":
            return web.Response(status=503, headers={"Retry-After": "soon"}, text="[]")
        if kind == "429":
            return web.Response(status=429, headers={"Retry-After": "7"}, text="{}")
        return web.json_response(["not", "an", "object"], status=400)

    async def health(request: web.Request) -> web.Response:
        return web.json_response(["not", "health"])

    app = web.Application()
    app.router.add_get("/api/v1/stats", handle)
    app.router.add_get("/api/v1/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield HomeIQClient(async_get_clientsession(hass), f"http://127.0.0.1:{port}", "t")
    await runner.cleanup()


async def test_odd_answers(odd_peer: HomeIQClient) -> None:
    """Non-JSON, empty, 5xx, rate limits and non-object errors map to the right exceptions."""
    with pytest.raises(HomeIQConnectionError, match="Invalid JSON"):
        await odd_peer._request("GET", "/api/v1/stats", params={"kind": "text"})
    assert await odd_peer._request("GET", "/api/v1/stats", params={"kind": "empty"}) == {}
    with pytest.raises(HomeIQConnectionError, match="500"):
        await odd_peer._request("GET", "/api/v1/stats", params={"kind": "500"})
    with pytest.raises(HomeIQRateLimitedError) as limited:
        await odd_peer._request("GET", "/api/v1/stats", params={"kind": "503"})
    assert limited.value.retry_after is None
    with pytest.raises(HomeIQRateLimitedError) as limited:
        await odd_peer._request("GET", "/api/v1/stats", params={"kind": "429"})
    assert limited.value.retry_after == 7.0
    with pytest.raises(HomeIQResponseError, match="HTTP 400"):
        await odd_peer._request("GET", "/api/v1/stats", params={"kind": "list"})


async def test_answers_off_the_contract(odd_peer: HomeIQClient) -> None:
    """A success whose body does not fit the contract is an error naming the field."""
    with pytest.raises(HomeIQContractError, match=r"got `int` - at `\$\.generated_at`"):
        await odd_peer.async_stats("off_contract")
    with pytest.raises(HomeIQConnectionError, match="Invalid JSON"):
        await odd_peer.async_stats("text")
    # Not even the API version can be read: not taken for another version's answer.
    with pytest.raises(HomeIQContractError, match="got `array`") as err:
        await odd_peer.async_health()
    assert not isinstance(err.value, HomeIQIncompatibleError)
