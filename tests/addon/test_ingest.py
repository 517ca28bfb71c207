"""POST /api/v1/ingest against the real add-on process and its SQLite file."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.addon.factory import batch, service_event, state_event
from tests.conftest import AddonProcess


async def post(
    server: AddonProcess, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/api/v1/ingest",
            data=data,
            headers=server.headers if headers is None else headers,
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_batch_is_committed_and_acknowledged(addon_server: AddonProcess) -> None:
    body = batch([state_event(i) for i in range(10)] + [service_event(1)])
    status, answer = await post(addon_server, body)
    assert status == 200
    assert answer == {"batch_id": body["batch_id"], "accepted": 11, "duplicate": False}
    # Acknowledged means committed: another process sees the rows at once.
    assert addon_server.row_count() == 11


async def test_repeated_batch_id_gets_same_answer_and_writes_nothing(
    addon_server: AddonProcess,
) -> None:
    body = batch([state_event(i) for i in range(4)])
    first = await post(addon_server, body)
    again = await post(addon_server, body)
    assert first[1]["accepted"] == again[1]["accepted"] == 4
    assert again == (200, {**first[1], "duplicate": True})
    assert addon_server.row_count() == 4
