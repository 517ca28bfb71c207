"""GET /api/openapi.json: the OpenAPI 3.1 document of every route.

Each capability declares its paths with ``add_paths(app, {...}, structs)`` where it
registers its routes; tests/addon/test_openapi.py fails when a route and the document
disagree. The payload schemas are not written here: they are generated from the
contract's msgspec structs (contract.py) that a capability names in ``structs``, so the
document says what the service decodes and encodes, field descriptions included.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
import msgspec

from .. import __version__
from ..contract import Error
from .keys import CONFIG
from .responses import json_response

OPENAPI: Final = web.AppKey("homeiq_openapi_paths", dict[str, dict[str, Any]])
# The structs the paths refer to (with ref()); each becomes a component schema.
STRUCTS: Final = web.AppKey("homeiq_openapi_structs", list[type[msgspec.Struct]])
_REF: Final = "#/components/schemas/{name}"

# Query parameters are no payload of the contract: their schemas are written out here.
STRING: Final[dict[str, Any]] = {"type": "string"}
TIME: Final[dict[str, Any]] = {"type": "string", "format": "date-time"}


def ref(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The schema of a contract struct, as a reference to its component."""
    return {"$ref": _REF.format(name=struct.__name__)}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A successful answer; ``schema`` None for a JSON object not described further."""
    return {"description": description, "content": json_content(schema or {"type": "object"})}


def error_answer(description: str) -> dict[str, Any]:
    """A refusal: the contract's Error."""
    return {"description": description, "content": json_content(ref(Error))}


def query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema or STRING}


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STRING}


AUTH_ERRORS: Final = {"401": error_answer("missing or wrong token")}


def operation(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One documented operation; every one may be refused for its token (401)."""
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **AUTH_ERRORS}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": json_content(body)}
    if parameters:
        op["parameters"] = parameters
    return op


def add_paths(
    app: web.Application,
    paths: dict[str, dict[str, Any]],
    structs: tuple[type[msgspec.Struct], ...] = (),
) -> None:
    """Declare routes in the document, and the contract structs they refer to (call from
    the capability's setup)."""
    app.setdefault(OPENAPI, {})
    app.setdefault(STRUCTS, [Error])
    for path, methods in paths.items():
        app[OPENAPI].setdefault(path, {}).update(methods)
    app[STRUCTS].extend(s for s in structs if s not in app[STRUCTS])


# What the connection layer answers for any request with a body (server/connections.py,
# ingest/routes.py).
_BODY_ERRORS: Final = {
    "408": error_answer("the body did not arrive within the body timeout"),
    "415": error_answer("a compressed body (only ingest takes one)"),
}


def _with_body_errors(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(paths.items()):
        out[path] = {}
        for method, op in methods.items():
            out[path][method] = op
            if "requestBody" in op:
                responses = {**_BODY_ERRORS, **op["responses"]}
                out[path][method] = {**op, "responses": dict(sorted(responses.items()))}
    return out


def component_schemas(structs: list[type[msgspec.Struct]]) -> dict[str, Any]:
    """The schemas of the structs and of every struct they contain, by name."""
    _, components = msgspec.json.schema_components(structs, ref_template=_REF)
    return dict(sorted(components.items()))


def document(app: web.Application) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "HomeIQ add-on API", "version": __version__},
        "servers": [{"url": f"http://homeiq:{app[CONFIG].port}"}],
        "security": [{"bearer": []}],
        "paths": _with_body_errors(app[OPENAPI]),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": component_schemas(app[STRUCTS]),
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
    add_paths(
        app,
        {"/api/openapi.json": {"get": operation("This document", {"200": answer("OpenAPI 3.1")})}},
    )
