"""The OpenAPI document names every /api route the router serves, and nothing else."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from homeiq_addon.app import build_app
from homeiq_addon.config import Config
from homeiq_addon.server.openapi import document
from homeiq_addon.store.db import Store
from tests.addon.test_ingest import get
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
