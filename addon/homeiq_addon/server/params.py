"""Query-string parameters: parsed strictly, each failure a 400 naming the parameter.

A parameter given empty (``?limit=``) is no integer or time either: refused, not ignored.
"""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from ..contract import TIME_EXPECTED, parse_time_us
from .responses import error

# ASCII digits only: int() would also take " 12", "1_2", Arabic-Indic or fullwidth digits.
# Nineteen digits at most: beyond that a number cannot be a 64-bit SQLite integer.
INTEGER_RE: Final = re.compile(r"-?[0-9]{1,19}")


class BadParam(Exception):
    """A query parameter the client got wrong; becomes a 400 answer."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.response = error(400, "invalid_parameter", f"{name}: {message}")


def time_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    # A '+' in a query string arrives as a space; put it back before parsing.
    value = parse_time_us(raw.replace(" ", "+"))
    if value is None:
        raise BadParam(name, TIME_EXPECTED)
    return value


def parse_int(raw: str) -> int | None:
    """The integer written in ASCII digits (optionally signed), else None."""
    return int(raw) if INTEGER_RE.fullmatch(raw) else None


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = parse_int(raw)
    if value is None or not low <= value <= high:
        raise BadParam(name, f"expected integer from {low} to {high}")
    return value


def choice_param(request: web.Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.query.get(name, default)
    if value not in choices:
        raise BadParam(name, "expected one of " + ", ".join(choices))
    return value
