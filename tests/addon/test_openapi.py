"""The OpenAPI document names every /api route the router serves, and nothing else; what
the add-on really answers is valid against the schemas it documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from jsonschema import Draft202012Validator

from homeiq_addon.app import build_app
from homeiq_addon.config import Config
from homeiq_addon.contract import STATS_PERIODS
from homeiq_addon.server.openapi import document
from homeiq_addon.store.db import Store
from tests.addon.factory import batch, service_event, state_event
from tests.addon.test_ingest import get, post
from tests.conftest import AddonProcess


def _routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if path.startswith("/api") and route.method not in ("HEAD", "*"):
            out.add((route.method.lower(), path))
    return out


async def test_document_matches_router(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        app = await build_app(Config(data_dir=tmp_path), store)
        doc = document(app)
        documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
        assert documented == _routes(app)
        assert doc["openapi"].startswith("3.")
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                assert op.get("summary"), (method, path)
                assert op.get("responses"), (method, path)
    finally:
        await store.close()


async def test_served_document(addon_server: AddonProcess) -> None:
    status, doc = await get(addon_server, "/api/openapi.json")
    assert status == 200
    event = doc["components"]["schemas"]["Event"]
    assert "time_fired" in event["required"]
    assert event["additionalProperties"] is False
    assert "/api/v1/ingest" in doc["paths"]


def _check(doc: dict[str, Any], component: str, answer: Any) -> None:
    """``answer`` is valid against the document's component schema (its $refs resolved
    within the document)."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    Draft202012Validator(schema).validate(answer)


async def _anonymous(server: AddonProcess, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}{path}") as resp:
        return resp.status, await resp.json()


async def test_real_answers_match_the_generated_schemas(addon_server: AddonProcess) -> None:
    status, doc = await get(addon_server, "/api/openapi.json")
    assert status == 200
    # The payload schemas come from the contract's structs, descriptions included.
    time_fired = doc["components"]["schemas"]["Event"]["properties"]["time_fired"]
    assert time_fired["description"].startswith("expected ISO 8601 datetime")
    answers: list[tuple[str, Any]] = []

    now = datetime.now(UTC) - timedelta(seconds=30)
    events = [state_event(i, at=now) for i in range(5)] + [
        service_event(1, time_fired=now.isoformat())
    ]
    status, ack = await post(addon_server, batch(events))
    assert status == 200
    answers.append(("Ack", ack))
    status, health = await get(addon_server, "/api/v1/health")
    assert status == 200
    answers.append(("Health", health))
    status, minimal = await _anonymous(addon_server, "/api/v1/health?minimal=1")
    assert (status, minimal) == (200, {"status": "healthy"})
    answers.append(("HealthMinimal", minimal))
    for period in STATS_PERIODS:
        status, stats = await get(addon_server, f"/api/v1/stats?period={period}")
        assert status == 200
        answers.append(("Stats", stats))
    assert stats["metrics"]["events"] == 6, "the figures checked are real ones"
    status, page = await get(addon_server, "/api/v1/events")
    assert status == 200
    assert len(page["events"]) == 6
    answers += [("StoredEvent", event) for event in page["events"]]

    refusals = [
        await get(addon_server, "/api/v1/stats?period=1y"),
        await post(addon_server, {"batch_id": "b", "source": {}, "events": []}),
        await post(addon_server, b"{not json"),
        await _anonymous(addon_server, "/api/v1/stats"),
        await get(addon_server, "/api/v1/retention/policies/nothing"),
    ]
    assert [status for status, _ in refusals] == [400, 422, 400, 401, 404]
    answers += [("Error", body) for _, body in refusals]

    for component, answer in answers:
        _check(doc, component, answer)
