"""POST /api/v1/export: write an archive of a time range into the share folder."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web
import orjson

from ..contract import TIME_EXPECTED, parse_time_us
from ..errors import BadRequest, InsufficientStorage, InvalidJson
from ..server.keys import CONFIG, STORE
from ..server.openapi import TIME, add_paths, answer, error_answer, operation
from ..server.responses import json_response
from .service import FORMATS, export


async def post_export(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as err:
        raise InvalidJson(f"body: malformed JSON: {err}") from err
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    unknown = set(body) - {"start", "end", "format"}
    if unknown:
        raise BadRequest(f"{sorted(unknown)[0]}: unknown key")
    times = {}
    for key in ("start", "end"):
        value = parse_time_us(body.get(key)) if isinstance(body.get(key), str) else None
        if value is None:
            raise BadRequest(f"{key}: {TIME_EXPECTED}")
        times[key] = value
    if times["start"] >= times["end"]:
        raise BadRequest("end: must be after start")
    fmt = body.get("format", "jsonl")
    if fmt not in FORMATS:
        raise BadRequest('format: expected "jsonl" or "csv"')
    folder = request.app[CONFIG].share_dir
    try:
        result = await asyncio.to_thread(
            export, request.app[STORE], folder, times["start"], times["end"], fmt
        )
    except OSError as err:
        raise InsufficientStorage(
            f"cannot write to {folder}: {err.strerror}", code="share_unwritable"
        ) from err
    return json_response(result, 201)


_BODY: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["start", "end"],
    "properties": {"start": TIME, "end": TIME, "format": {"enum": list(FORMATS)}},
}
PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/export": {
        "post": operation(
            "Export a time range as gzip JSONL or CSV into the share folder",
            {
                "201": answer("the file written"),
                "400": error_answer("bad body"),
                "507": error_answer("share folder not writable"),
            },
            body=_BODY,
        ),
    },
}


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/export", post_export)
    add_paths(app, PATHS)
