"""HTTP routes of retention (policies, runs, stats), its rollup history resolutions, and
its scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from typing import Any

from aiohttp import web
import orjson

from ..contract import TIME_EXPECTED, parse_time_us
from ..history.providers import HISTORY
from ..server.keys import CONFIG, STORE
from ..server.openapi import add_paths
from ..server.responses import error, json_response
from . import history
from .openapi_paths import PATHS
from .policies import DEFAULT_NAME, Policy, PolicyInvalid
from .service import PolicyConflict, RetentionService, RunInProgress

RETENTION = web.AppKey("homeiq_retention", RetentionService)
PREFIX = "/api/v1/retention"


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or an HTTP 400 naming the problem."""
    body = await request.read()
    try:
        return orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as err:
        raise web.HTTPBadRequest(text=f"body: malformed JSON: {err}") from err


def _policy_error(err: Exception) -> web.Response:
    if isinstance(err, PolicyConflict):
        codes = {400: "invalid_policy", 404: "not_found", 409: "conflict"}
        return error(err.status, codes.get(err.status, "error"), str(err))
    return error(422, "invalid_policy", str(err))


async def list_policies(request: web.Request) -> web.Response:
    return json_response({"policies": await request.app[RETENTION].list_policies()})


async def get_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for policy in await request.app[RETENTION].list_policies():
        if policy["name"] == name:
            return json_response(policy)
    return error(404, "not_found", f"no policy named {name!r}")


async def create_policy(request: web.Request) -> web.Response:
    try:
        policy = Policy.from_body(await read_json(request))
        return json_response(await request.app[RETENTION].create(policy), 201)
    except (PolicyInvalid, PolicyConflict) as err:
        return _policy_error(err)


async def update_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request)
    if isinstance(body, dict) and body.setdefault("name", name) != name:
        return error(422, "invalid_policy", f"name: {body['name']!r} differs from the URL")
    try:
        policy = Policy.from_body(body, default=name == DEFAULT_NAME)
        return json_response(await request.app[RETENTION].update(name, policy))
    except (PolicyInvalid, PolicyConflict) as err:
        return _policy_error(err)


async def delete_policy(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        await request.app[RETENTION].delete(name)
    except PolicyConflict as err:
        return _policy_error(err)
    return json_response({"deleted": name})


async def run(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) - {"dry_run", "now"}:
        return error(400, "bad_request", 'body: expected {"dry_run": bool}')
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        return error(400, "bad_request", "dry_run: expected true or false")
    now_us = None
    if "now" in body:
        # A simulated clock, for tests only: a real deployment always runs at real time.
        if not request.app[CONFIG].dev:
            return error(400, "bad_request", "now: only accepted in development mode (--dev)")
        now_us = parse_time_us(body["now"]) if isinstance(body["now"], str) else None
        if now_us is None:
            return error(400, "bad_request", f"now: {TIME_EXPECTED}")
    try:
        report = await request.app[RETENTION].run(dry_run=dry_run, now_us=now_us)
    except RunInProgress as err:
        return error(409, "conflict", str(err))
    return json_response(report)


async def stats(request: web.Request) -> web.Response:
    return json_response(await request.app[RETENTION].stats())


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = RetentionService(app[STORE], app[CONFIG])
    app[RETENTION] = service
    await service.start()
    task = asyncio.create_task(service.scheduler(), name="homeiq-retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """Register retention's routes and history resolutions, and start its scheduler."""
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get(f"{PREFIX}/policies", list_policies)
    app.router.add_post(f"{PREFIX}/policies", create_policy)
    app.router.add_get(f"{PREFIX}/policies/{{name}}", get_policy)
    app.router.add_put(f"{PREFIX}/policies/{{name}}", update_policy)
    app.router.add_delete(f"{PREFIX}/policies/{{name}}", delete_policy)
    app.router.add_post(f"{PREFIX}/run", run)
    app.router.add_get(f"{PREFIX}/stats", stats)
    app[HISTORY].update(
        raw=history.raw_provider, hour=history.hour_provider, day=history.day_provider
    )
    add_paths(app, PATHS)
