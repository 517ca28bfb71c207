"""JSON answers, and turning every failure into one (never an HTML page or a bare 500).

The error middleware is the one place a refusal becomes an answer: handlers raise an
errors.py class and never build an error response (only the connection layer does, for a
request that never reaches the application).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import logging
from typing import Any

from aiohttp import web
import msgspec
import orjson

from ..contract import Error
from ..errors import HomeIQError

_LOGGER = logging.getLogger(__name__)

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def struct_response(answer: msgspec.Struct, status: int = 200) -> web.Response:
    """A payload of the contract, encoded by msgspec: what is sent is what is documented."""
    return web.Response(
        body=msgspec.json.encode(answer), status=status, content_type="application/json"
    )


def error(status: int, code: str, message: str) -> web.Response:
    """The contract's Error answer: {"error": code, "message": human text}."""
    return struct_response(Error(error=code, message=message), status)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}

_BODY_HEADERS = frozenset({"content-type", "content-length"})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HomeIQError as exc:
        response = error(exc.status, exc.code, exc.message)
        if exc.closes_connection:
            # The rest of the body may still come; this connection is done either way.
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        text = exc.text or ""
        # aiohttp's default text is just "404: Not Found"; name what was asked for instead.
        if not text or text.startswith(f"{exc.status}: "):
            text = f"{request.method} {request.path}: {exc.reason}"
        response = error(exc.status, code, text)
        # The body becomes JSON; the headers that say more (Allow on a 405) stay.
        for name, value in exc.headers.items():
            if name.lower() not in _BODY_HEADERS:
                response.headers[name] = value
        return response
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and request.transport is None:
            # The client went away, mid-body for one: nobody is left to answer.
            _LOGGER.debug("%s %s: the client closed the connection", request.method, request.path)
            return error(400, "bad_request", "the connection closed during the request")
        _LOGGER.exception("error while handling %s %s", request.method, request.path)
        return error(500, "internal_error", "internal error; see the add-on log")
