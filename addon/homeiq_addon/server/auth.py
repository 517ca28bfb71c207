"""Who may call: a Bearer token on the API port, the Supervisor's address on ingress.

One middleware decides by the local port a request arrived on, so the same routes serve
both sites and nothing can reach the token-free ingress side through the API port.
"""

from __future__ import annotations

import hmac
from typing import Final

from aiohttp import web

from ..errors import Forbidden, Unauthorized
from .keys import CONFIG, RUNTIME
from .responses import Handler

SUPERVISOR_INGRESS: Final = "172.30.32.2"
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1"})
MINIMAL_HEALTH: Final = "/api/v1/health"


def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return int(sockname[1]) if sockname else None


def is_ingress(request: web.Request) -> bool:
    ingress_port = request.app[CONFIG].ingress_port
    return ingress_port is not None and _local_port(request) == ingress_port


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[CONFIG]
    if is_ingress(request):
        allowed = {SUPERVISOR_INGRESS} | (_LOOPBACK if config.dev else frozenset())
        if request.remote not in allowed:
            raise Forbidden("ingress answers only the Supervisor")
        return await handler(request)
    if request.path == MINIMAL_HEALTH and request.query.get("minimal") == "1":
        return await handler(request)
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Authorization: Bearer <token> header is required", code="missing_token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and not token:
        raise Unauthorized(
            "Authorization: Bearer <token>: the token is empty", code="missing_token"
        )
    # aiohttp keeps bytes that are not UTF-8 as surrogates; no token of ours has them.
    if (
        scheme.lower() != "bearer"
        or not token.isascii()
        or not hmac.compare_digest(token.encode(), request.app[RUNTIME].token.encode())
    ):
        raise Unauthorized("the token is not this add-on's token")
    return await handler(request)
