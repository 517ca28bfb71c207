"""The ingress panel: static files at ``/``, no build step.

The page uses relative URLs only, so it works below the Supervisor's ingress prefix
(``/api/hassio_ingress/<token>/``). When the Supervisor sends ``X-Ingress-Path`` the page
also gets a ``<base href>``, so relative URLs resolve even if the page was reached
without its trailing slash.

``GET /token`` hands the API token to the panel, for people who add the integration by
hand. Only the ingress port answers it: there Home Assistant has already checked who is
asking (the panel sits behind its login). On the API port it does not exist.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
import re
from typing import Final

from aiohttp import web

from ..errors import NotFound
from ..server.auth import is_ingress
from ..server.keys import RUNTIME
from ..server.responses import json_response

PANEL_DIR: Final = Path(__file__).parent
_FILES: Final = {
    "app.js": "application/javascript",
    "style.css": "text/css",
}
# What a Supervisor ingress path looks like; anything else is ignored, not echoed.
_INGRESS_PATH: Final = re.compile(r"^/api/hassio_ingress/[A-Za-z0-9_-]+$")
_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def index(request: web.Request) -> web.Response:
    html = (PANEL_DIR / "index.html").read_text(encoding="utf-8")
    prefix = request.headers.get("X-Ingress-Path", "")
    base = f'<base href="{escape(prefix)}/">' if _INGRESS_PATH.match(prefix) else ""
    return web.Response(
        text=html.replace("<!--BASE-->", base),
        content_type="text/html",
        charset="utf-8",
        headers=_HEADERS,
    )


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _FILES:
        raise NotFound(f"no panel file {name!r}")
    return web.Response(
        body=(PANEL_DIR / name).read_bytes(),
        content_type=_FILES[name],
        charset="utf-8",
        headers=_HEADERS,
    )


async def token(request: web.Request) -> web.Response:
    if not is_ingress(request):
        # As if the route did not exist: the API port does not reveal it.
        raise NotFound(f"GET {request.path}: Not Found")
    response = json_response({"token": request.app[RUNTIME].token})
    response.headers.update(_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/token", token)
    app.router.add_get("/{name:(app\\.js|style\\.css)}", static)
