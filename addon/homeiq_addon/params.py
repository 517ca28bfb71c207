"""Query-string parameters: parsed strictly, each failure a 400 naming the parameter."""

from __future__ import annotations

from aiohttp import web

from .responses import error
from .schema import parse_time_us


class BadParam(Exception):
    """A query parameter the client got wrong; becomes a 400 answer."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.response = error(400, "invalid_parameter", f"{name}: {message}")


def time_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    # A '+' in a query string arrives as a space; put it back before parsing.
    value = parse_time_us(raw.replace(" ", "+"))
    if value is None:
        raise BadParam(name, "expected ISO 8601 datetime with UTC offset")
    return value


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(name, f"expected integer from {low} to {high}") from None
    if not low <= value <= high:
        raise BadParam(name, f"expected integer from {low} to {high}")
    return value


def choice_param(request: web.Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.query.get(name, default)
    if value not in choices:
        raise BadParam(name, "expected one of " + ", ".join(choices))
    return value
