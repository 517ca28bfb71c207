"""GET /api/v1/events and /api/v1/history/{entity_id} on the real add-on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.addon.factory import batch, service_event, state_event
from tests.addon.test_ingest import get, post
from tests.conftest import AddonProcess


@pytest.fixture
async def loaded(addon_server: AddonProcess) -> AddonProcess:
    events = [state_event(i) for i in range(40)]
    events += [state_event(i, entity_id="light.hall", domain="light", state="on", area="Hall",
                           area_id="hall", numeric_value=None) for i in range(40, 50)]  # fmt: skip
    events += [service_event(i) for i in range(5)]
    await post(addon_server, batch(events))
    return addon_server


async def test_filters(loaded: AddonProcess) -> None:
    cases: dict[str, int] = {
        "": 55,
        "?entity_id=sensor.living_room_temperature_3": 6,
        "?domain=light": 10,
        "?event_type=call_service": 5,
        "?area=Hall": 10,
        "?area=hall": 10,
        "?entity_id=light.nowhere": 0,
        "?start=2026-11-22T10:00:10%2B00:00&end=2026-11-22T10:00:20Z": 10,
    }
    for query, expected in cases.items():
        sep = "&" if "?" in query else "?"
        status, page = await get(loaded, f"/api/v1/events{query}{sep}limit=1000")
        assert status == 200, query
        assert len(page["events"]) == expected, query
        assert page["next_cursor"] is None


async def test_pagination_walks_everything_newest_first(loaded: AddonProcess) -> None:
    seen: list[dict[str, Any]] = []
    path = "/api/v1/events?limit=7"
    while True:
        status, page = await get(loaded, path)
        assert status == 200
        seen += page["events"]
        if page["next_cursor"] is None:
            break
        path = f"/api/v1/events?limit=7&cursor={page['next_cursor']}"
    assert len(seen) == 55
    assert len({e["id"] for e in seen}) == 55
    keys = [(e["time_fired"], e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("limit=ten", "limit"),
        ("start=yesterday", "start"),
        ("end=2026-11-22T10:00:00", "end"),
        ("cursor=abc", "cursor"),
    ],
)
async def test_bad_parameters_are_named(loaded: AddonProcess, query: str, name: str) -> None:
    status, answer = await get(loaded, f"/api/v1/events?{query}")
    assert status == 400
    assert answer["error"] == "invalid_parameter"
    assert answer["message"].startswith(f"{name}: ")


async def test_raw_history(loaded: AddonProcess) -> None:
    status, answer = await get(
        loaded,
        "/api/v1/history/sensor.living_room_temperature_1"
        "?start=2026-11-22T00:00:00Z&end=2026-11-23T00:00:00Z",
    )
    assert status == 200
    assert answer["entity_id"] == "sensor.living_room_temperature_1"
    assert answer["resolution"] == "raw"
    times = [p["time"] for p in answer["points"]]
    assert times == sorted(times)
    assert answer["points"][0] == {
        "time": "2026-11-22T10:00:01.123457+00:00",
        "state": "21.5",
        "numeric_value": 21.5,
    }
    assert len(answer["points"]) == 6
    status, answer = await get(
        loaded, "/api/v1/history/light.hall?start=2026-11-22T00:00:00Z&end=2026-11-23T00:00:00Z"
    )
    assert {p["state"] for p in answer["points"]} == {"on"}
    status, answer = await get(loaded, "/api/v1/history/light.hall?resolution=minute")
    assert status == 400
    assert answer["message"].startswith("resolution: ")
