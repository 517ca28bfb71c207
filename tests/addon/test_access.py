"""Who gets in: the token on every API route, the Supervisor alone on ingress, and the
rules a token must meet before the add-on starts with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import re
import stat

import aiohttp
import pytest

from homeiq_addon.app import build_app
from homeiq_addon.config import Config
from homeiq_addon.store.db import Store
from tests.addon.factory import batch
from tests.addon.test_ingest import post
from tests.conftest import AddonProcess, running_addon

# A value for each path parameter the routes have; an unknown one gets "x".
_PATH_VALUES = {"entity_id": "sensor.nothing_here", "name": "nothing-here"}


async def served_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path) of every route the real application registers, parameters filled."""
    data_dir = tmp_path / "routes"
    data_dir.mkdir()
    store = await Store.open(data_dir)
    try:
        app = await build_app(Config(data_dir=data_dir), store)
        routes = set()
        for route in app.router.routes():
            template = route.resource.canonical if route.resource is not None else ""
            path = re.sub(r"\{(\w+)[^}]*\}", lambda m: _PATH_VALUES.get(m[1], "x"), template)
            routes.add((route.method, path))
    finally:
        await store.close()
    assert ("POST", "/api/v1/ingest") in routes
    return sorted(routes)


@pytest.fixture
def production_server(tmp_path: Path, socket_enabled: None) -> Iterator[AddonProcess]:
    """The add-on as it runs under the Supervisor: not in --dev mode."""
    with running_addon(tmp_path / "data", dev=False) as server:
        yield server


async def _status(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]
) -> int:
    async with session.request(method, url, headers=headers, allow_redirects=False) as resp:
        return resp.status


async def test_every_route_needs_the_token_in_the_header(
    production_server: AddonProcess, tmp_path: Path
) -> None:
    server = production_server
    token = server.token
    valid = {"Authorization": f"Bearer {token}"}
    refused = {
        "no token": ("", {}),
        "wrong token": ("", {"Authorization": "Bearer " + "w" * 43}),
        "other scheme": ("", {"Authorization": f"Basic {token}"}),
        "?token=": (f"?token={token}", {}),
        "?access_token=": (f"?access_token={token}", {}),
    }
    wrong = []
    async with aiohttp.ClientSession() as session:
        for method, path in await served_routes(tmp_path):
            for case, (query, headers) in refused.items():
                status = await _status(session, method, f"{server.url}{path}{query}", headers)
                if status != 401:
                    wrong.append(f"{method} {path} with {case}: {status}, expected 401")
            status = await _status(session, method, f"{server.url}{path}", valid)
            if status in (401, 403):
                wrong.append(f"{method} {path} with the token: {status}")
            # Ingress answers only the Supervisor's address, token or not.
            status = await _status(session, method, f"{server.ingress_url}{path}", valid)
            if status != 403:
                wrong.append(f"{method} {path} on ingress from 127.0.0.1: {status}, expected 403")
    assert wrong == []


async def test_only_the_minimal_health_is_open(production_server: AddonProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{production_server.url}/api/v1/health?minimal=1") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "healthy"}
        async with session.get(f"{production_server.url}/api/v1/health?minimal=0") as resp:
            assert resp.status == 401


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param("", {}, id="no-token"),
        pytest.param("", {"Authorization": "Bearer " + "w" * 43}, id="wrong-token"),
        pytest.param("?token=TOKEN", {}, id="query-token"),
        pytest.param("?access_token=TOKEN", {}, id="query-access-token"),
    ],
)
async def test_websocket_handshake_needs_the_token(
    production_server: AddonProcess, query: str, headers: dict[str, str]
) -> None:
    url = f"{production_server.url}/api/v1/ws{query.replace('TOKEN', production_server.token)}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers=headers)
        assert refused.value.status == 401
        async with session.ws_connect(
            f"{production_server.url}/api/v1/ws", headers=production_server.headers
        ) as ws:
            assert not ws.closed


async def test_ingress_without_token_in_dev_mode(addon_server: AddonProcess) -> None:
    status, answer = await post(addon_server, batch(), headers={}, url=addon_server.ingress_url)
    assert status == 200
    assert answer["accepted"] == 3


async def test_token_file_is_private_and_stable(addon_server: AddonProcess) -> None:
    token_file = addon_server.data_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = addon_server.token
    assert len(token) >= 40
    addon_server.stop()
    addon_server.start()
    assert addon_server.token == token


async def test_unknown_route_is_a_json_404(addon_server: AddonProcess) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{addon_server.url}/api/v1/nope", headers=addon_server.headers) as resp,
    ):
        assert resp.status == 404
        assert await resp.json() == {
            "error": "not_found",
            "message": "GET /api/v1/nope: Not Found",
        }


# --- the token's rules -------------------------------------------------------------------


@pytest.fixture
def stopped_server(tmp_path: Path, socket_enabled: None) -> Iterator[AddonProcess]:
    server = AddonProcess(tmp_path / "data")
    server.data_dir.mkdir()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("content", ["", "\n", "   \n\t\n"])
async def test_empty_token_file_gets_a_new_token(
    stopped_server: AddonProcess, content: str
) -> None:
    token_file = stopped_server.data_dir / "token"
    token_file.write_text(content)
    stopped_server.start()
    token = stopped_server.token
    assert len(token) >= 40
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    async with aiohttp.ClientSession() as session:
        for value in ("Bearer ", "Bearer", "Bearer \t "):
            url = f"{stopped_server.url}/api/v1/stats"
            assert await _status(session, "GET", url, {"Authorization": value}) == 401
        url = f"{stopped_server.url}/api/v1/stats"
        assert await _status(session, "GET", url, stopped_server.headers) == 200
    log = stopped_server.log()
    assert "was empty; a new token was generated" in log
    assert token not in log


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("Sh0rtTok3n", "shorter than 16 characters", id="short"),
        pytest.param("Has a space in it 1234", "visible ASCII", id="space"),
        pytest.param("Contr\x01lCharacterToken", "visible ASCII", id="control"),
    ],
)
def test_weak_token_file_stops_the_addon(
    stopped_server: AddonProcess, content: str, problem: str
) -> None:
    (stopped_server.data_dir / "token").write_text(content + "\n")
    with pytest.raises(RuntimeError, match="exited with 2"):
        stopped_server.start()
    log = stopped_server.log()
    assert f"the token in {stopped_server.data_dir / 'token'} is refused" in log
    assert problem in log
    assert "delete the file" in log
    assert content not in log


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("Sh0rtTok3n", "shorter than 16 characters", id="short"),
        pytest.param("   x   ", "shorter than 16 characters", id="whitespace"),
        pytest.param("Has a space in it 1234", "visible ASCII", id="space"),
    ],
)
def test_weak_homeiq_token_stops_the_addon(
    tmp_path: Path, socket_enabled: None, value: str, problem: str
) -> None:
    server = AddonProcess(tmp_path / "data", env={"HOMEIQ_TOKEN": value})
    server.data_dir.mkdir()
    with pytest.raises(RuntimeError, match="exited with 2"):
        server.start()
    log = server.log()
    assert "HOMEIQ_TOKEN is refused: " in log
    assert problem in log


async def test_homeiq_token_of_16_characters_is_the_token(
    tmp_path: Path, socket_enabled: None
) -> None:
    token = "Sixteen-chars-ok"
    server = AddonProcess(tmp_path / "data", env={"HOMEIQ_TOKEN": token})
    server.data_dir.mkdir()
    server.start()
    try:
        url = f"{server.url}/api/v1/stats"
        async with aiohttp.ClientSession() as session:
            assert await _status(session, "GET", url, {"Authorization": f"Bearer {token}"}) == 200
            assert await _status(session, "GET", url, {"Authorization": "Bearer "}) == 401
    finally:
        server.stop()
