"""POST /api/v1/export: write an archive of a time range into the share folder."""

from __future__ import annotations

import asyncio

from aiohttp import web
import orjson

from ..contract import TIME_EXPECTED, parse_time_us
from ..server.keys import CONFIG, STORE
from ..server.responses import error, json_response
from .archive import export


async def post_export(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as err:
        return error(400, "invalid_json", f"body: malformed JSON: {err}")
    if not isinstance(body, dict):
        return error(400, "bad_request", "body: expected a JSON object")
    unknown = set(body) - {"start", "end", "format"}
    if unknown:
        return error(400, "bad_request", f"{sorted(unknown)[0]}: unknown key")
    times = {}
    for key in ("start", "end"):
        value = parse_time_us(body.get(key)) if isinstance(body.get(key), str) else None
        if value is None:
            return error(400, "bad_request", f"{key}: {TIME_EXPECTED}")
        times[key] = value
    if times["start"] >= times["end"]:
        return error(400, "bad_request", "end: must be after start")
    fmt = body.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        return error(400, "bad_request", 'format: expected "jsonl" or "csv"')
    folder = request.app[CONFIG].share_dir
    try:
        result = await asyncio.to_thread(
            export, request.app[STORE], folder, times["start"], times["end"], fmt
        )
    except OSError as err:
        return error(507, "share_unwritable", f"cannot write to {folder}: {err.strerror}")
    return json_response(result, 201)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/export", post_export)
