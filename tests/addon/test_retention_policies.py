"""The policy CRUD API: validation, clear 4xx answers, and nothing changed by bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from homeiq_addon.retention.policies import Policy, PolicySet
from tests.addon.retention_data import Api
from tests.conftest import AddonProcess

BASE = "/api/v1/retention/policies"
POWER = {"name": "power", "match_type": "entity", "pattern": "sensor.*_power", "raw_days": 7}


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


async def test_default_policy_comes_from_the_options(api: Api) -> None:
    status, body = await api.call("GET", BASE)
    assert status == 200
    assert body["policies"] == [
        {
            "name": "default",
            "match_type": "default",
            "pattern": None,
            "raw_days": 30.0,
            "hourly_days": 365.0,
            "daily_days": "forever",
            "description": None,
            "builtin": True,
        }
    ]


async def test_create_list_get_update_delete(api: Api) -> None:
    status, created = await api.call("POST", BASE, POWER)
    assert status == 201
    assert created["raw_days"] == 7.0
    assert created["hourly_days"] is None  # inherited from the default
    _, listing = await api.call("GET", BASE)
    assert [p["name"] for p in listing["policies"]] == ["default", "power"]

    status, updated = await api.call("PUT", f"{BASE}/power", {**POWER, "raw_days": "forever"})
    assert status == 200
    assert updated["raw_days"] == "forever"
    _, fetched = await api.call("GET", f"{BASE}/power")
    assert fetched == updated

    status, _ = await api.call("DELETE", f"{BASE}/power")
    assert status == 200
    assert (await api.call("GET", f"{BASE}/power"))[0] == 404


async def test_default_policy_is_editable_not_deletable(api: Api) -> None:
    body = {"raw_days": 10, "hourly_days": 100, "daily_days": 1000}
    status, updated = await api.call("PUT", f"{BASE}/default", body)
    assert status == 200
    assert (updated["raw_days"], updated["daily_days"]) == (10.0, 1000.0)
    status, answer = await api.call("DELETE", f"{BASE}/default")
    assert status == 400
    assert "default" in answer["message"]
    status, answer = await api.call("PUT", f"{BASE}/default", {"raw_days": 10})
    assert status == 422
    assert answer["message"].endswith("required key not provided")


@pytest.mark.parametrize(
    ("body", "status", "starts"),
    [
        (POWER, 409, "name: a policy named 'power' already exists"),
        ({**POWER, "name": "Bad Name"}, 422, "name:"),
        ({**POWER, "name": "default"}, 422, "name:"),
        ({**POWER, "name": "x", "raw_days": 0}, 422, "raw_days: must be a positive"),
        ({**POWER, "name": "x", "raw_days": -3}, 422, "raw_days: must be a positive"),
        ({**POWER, "name": "x", "hourly_days": "soon"}, 422, "hourly_days:"),
        ({**POWER, "name": "x", "raw_days": True}, 422, "raw_days:"),
        ({**POWER, "name": "x", "pattern": "sensor.[abc"}, 422, "pattern: unclosed '['"),
        ({**POWER, "name": "x", "pattern": "no_dot"}, 422, "pattern: 'no_dot' is not"),
        ({**POWER, "name": "x", "pattern": "Sensor.X"}, 422, "pattern:"),
        ({**POWER, "name": "x", "match_type": "area"}, 422, "match_type:"),
        ({"name": "x", "match_type": "domain", "pattern": "light"}, 422, "body: set at least"),
        ({**POWER, "name": "x", "colour": "red"}, 422, "colour:"),
        ([POWER], 422, "body: expected a JSON object"),
        (b"{oops", 400, "body: malformed JSON"),
    ],
)
async def test_bad_input_is_rejected_and_changes_nothing(
    api: Api, body: Any, status: int, starts: str
) -> None:
    assert (await api.call("POST", BASE, POWER))[0] == 201
    before = await api.call("GET", BASE)
    got, answer = await api.call("POST", BASE, body)
    assert got == status, answer
    assert answer["message"].startswith(starts), answer
    assert await api.call("GET", BASE) == before


async def test_unknown_policy_answers_404(api: Api) -> None:
    status, answer = await api.call("PUT", f"{BASE}/nope", POWER | {"name": "nope"})
    assert status == 404
    assert "nope" in answer["message"]
    assert (await api.call("DELETE", f"{BASE}/nope"))[0] == 404
    status, answer = await api.call("PUT", f"{BASE}/power", POWER | {"name": "other"})
    assert status == 422
    assert answer["message"].startswith("name:")


def test_precedence_entity_then_domain_then_event_type() -> None:
    default = Policy.from_body(
        {"raw_days": 30, "hourly_days": 365, "daily_days": "forever"}, default=True
    )
    overrides = [
        Policy.from_body(
            {
                "name": "states",
                "match_type": "event_type",
                "pattern": "state_changed",
                "raw_days": 3,
            }
        ),
        Policy.from_body(
            {"name": "sensors", "match_type": "domain", "pattern": "sensor", "raw_days": 5}
        ),
        Policy.from_body(
            {"name": "power", "match_type": "entity", "pattern": "sensor.*_power", "raw_days": 7}
        ),
        Policy.from_body(
            {
                "name": "kitchen-power",
                "match_type": "entity",
                "pattern": "sensor.kitchen_*_power",
                "raw_days": 9,
            }
        ),
    ]
    policies = PolicySet(default, overrides)

    def name(entity: str | None, event_type: str = "state_changed") -> str:
        return policies.for_event(entity, None, event_type).name

    assert name("sensor.kitchen_oven_power") == "kitchen-power"  # longest glob wins
    assert name("sensor.house_power") == "power"
    assert name("sensor.temperature") == "sensors"
    assert name("light.hall") == "states"
    assert name(None, "call_service") == "default"
    # Inherited tiers resolve from the default.
    assert policies.for_event("sensor.house_power", None, "state_changed").hourly_days == 365
