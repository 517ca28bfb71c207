"""GET /api/openapi.json: the OpenAPI 3.1 document of every route.

Each part of the service declares its paths with ``add_paths(app, {...})`` next to where
it registers the routes; tests/addon/test_openapi.py fails when a route and the document
disagree. The event schema is generated from the contract's Event, the validator itself.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
import msgspec

from .. import __version__
from ..contract import CAUSES, MAX_EVENTS, ORIGINS, Event
from .keys import CONFIG
from .responses import json_response

OPENAPI: Final = web.AppKey("homeiq_openapi_paths", dict[str, dict[str, Any]])

_NUM: Final[dict[str, Any]] = {"type": "number"}
_STR: Final[dict[str, Any]] = {"type": "string"}
_TIME: Final[dict[str, Any]] = {"type": "string", "format": "date-time"}
_KINDS: Final[dict[str, dict[str, Any]]] = {
    "time_fired": _TIME,
    "last_changed": _TIME,
    "last_reported": _TIME,
    "origin": {"enum": list(ORIGINS)},
    "cause": {"enum": list(CAUSES)},
    "data": {"type": "object"},
    "attributes": {"type": "object"},
    "labels": {"type": "array", "items": _STR},
    "people_home": {"type": "integer", "minimum": 0},
    "numeric_value": _NUM,
    "prev_state_seconds": _NUM,
    "outdoor_temperature": _NUM,
    "sun_elevation": _NUM,
    "event_type": {"type": "string", "minLength": 1, "maxLength": 64},
}


def event_schema() -> dict[str, Any]:
    props: dict[str, Any] = {}
    info = msgspec.inspect.type_info(Event)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        kind: Any = field.type
        nullable = isinstance(kind, msgspec.inspect.UnionType)
        if nullable:  # X | None
            kind = kind.types[0]
        base = dict(_KINDS.get(field.name, _STR))
        if nullable:
            base = {"anyOf": [base, {"type": "null"}]}
        props[field.name] = {**base, "description": kind.extra_json_schema["description"]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in info.fields if f.required],
        "properties": props,
    }


def stored_event_schema() -> dict[str, Any]:
    """An event as /events answers it: as ingested (null fields left out), plus its id."""
    schema = event_schema()
    schema["properties"] = {"id": {"type": "integer"}, **schema["properties"]}
    schema["required"] = ["id", *schema["required"]]
    return schema


_EVENTS_PAGE: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["events", "next_cursor"],
    "properties": {
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/StoredEvent"}},
        "next_cursor": {
            "type": ["string", "null"],
            "description": "pass as cursor for the next page; null on the last one",
        },
    },
}
_HISTORY: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["entity_id", "resolution", "points"],
    "properties": {
        "entity_id": _STR,
        "resolution": {"enum": ["raw", "hour", "day"]},
        "points": {"type": "array", "items": {"type": "object"}},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json({"$ref": "#/components/schemas/Error"})}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": _json(schema or {"type": "object"})}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema or _STR}


_AUTH_ERRORS = {"401": _error("missing or wrong token")}
_ACK = {"$ref": "#/components/schemas/Ack"}


def _read(description: str) -> dict[str, Any]:
    return {"200": _ok(description), "400": _error("bad parameter"), **_AUTH_ERRORS}


_PERIOD = {"enum": ["15m", "1h", "24h", "7d"]}
STORE_PATHS: Final[dict[str, dict[str, Any]]] = {
    "/api/v1/ingest": {
        "post": {
            "summary": "Store a batch of events (idempotent by batch_id)",
            "requestBody": {
                "required": True,
                "content": _json({"$ref": "#/components/schemas/Batch"}),
            },
            "responses": {
                "200": _ok(
                    "committed (or already committed: duplicate=true)",
                    {"$ref": "#/components/schemas/Ack"},
                ),
                "400": _error("malformed JSON, or a damaged gzip/deflate body"),
                "413": _error("body (compressed or inflated) larger than max_body_mb"),
                "415": _error("a Content-Encoding other than gzip or deflate"),
                "422": _error("breaks the wire contract; message names the field path"),
                **_AUTH_ERRORS,
            },
        }
    },
    "/api/v1/events": {
        "get": {
            "summary": "Stored events, newest first, with cursor pagination",
            "parameters": [
                _q("entity_id", "exact entity id"),
                _q("domain", "domain"),
                _q("event_type", "event type"),
                _q("area", "area name or area id"),
                _q("start", "inclusive ISO 8601 time", _TIME),
                _q("end", "exclusive ISO 8601 time", _TIME),
                _q("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _q("cursor", "next_cursor of the previous page"),
            ],
            "responses": {
                "200": _ok("a page of events", _EVENTS_PAGE),
                "400": _error("bad parameter"),
                **_AUTH_ERRORS,
            },
        }
    },
    "/api/v1/history/{entity_id}": {
        "get": {
            "summary": "An entity's states over time (raw) or its rollups (hour, day)",
            "parameters": [
                {"name": "entity_id", "in": "path", "required": True, "schema": _STR},
                _q("start", "inclusive ISO 8601 time (default: end - 24 h)", _TIME),
                _q("end", "exclusive ISO 8601 time (default: now)", _TIME),
                _q("limit", "points", {"type": "integer", "minimum": 1, "maximum": 10000}),
                _q("resolution", "raw, hour or day", {"enum": ["raw", "hour", "day"]}),
            ],
            "responses": {
                "200": _ok("points, oldest first", _HISTORY),
                "400": _error("bad parameter"),
                **_AUTH_ERRORS,
            },
        }
    },
    "/api/v1/stats": {
        "get": {
            "summary": "Metrics, trends and alerts over a period (from counters)",
            "parameters": [_q("period", "window", _PERIOD)],
            "responses": {
                "200": _ok("stats; rates in percent"),
                "400": _error("bad period"),
                **_AUTH_ERRORS,
            },
        }
    },
    "/api/v1/event-rate": {
        "get": {
            "summary": "Events accepted over the last minute",
            "responses": {"200": _ok("rate"), **_AUTH_ERRORS},
        }
    },
    "/api/v1/health": {
        "get": {
            "summary": "healthy, degraded (recent alerts) or unhealthy (store unreadable)",
            # minimal=1 answers without the token (the container's health check).
            "security": [{"bearer": []}, {}],
            "parameters": [_q("minimal", "1: only {status}, no token needed", {"enum": ["1"]})],
            "responses": {"200": _ok("health"), "503": _error("unhealthy"), **_AUTH_ERRORS},
        }
    },
    "/api/v1/ws": {
        "get": {
            "summary": "WebSocket: {type: rate} every second, {type: events} per batch",
            "responses": {
                "101": {"description": "switching protocols"},
                "400": _error("not a WebSocket handshake (no Upgrade header)"),
                **_AUTH_ERRORS,
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _ok("OpenAPI 3.1"), **_AUTH_ERRORS},
        },
    },
}


def add_paths(app: web.Application, paths: dict[str, dict[str, Any]]) -> None:
    """Declare routes in the document (call from the module's setup)."""
    app.setdefault(OPENAPI, {})
    for path, methods in paths.items():
        app[OPENAPI].setdefault(path, {}).update(methods)


# What the connection layer answers for any request with a body (server/connections.py,
# ingest/routes.py).
_BODY_ERRORS: Final = {
    "408": _error("the body did not arrive within the body timeout"),
    "415": _error("a compressed body (only ingest takes one)"),
}


def _with_body_errors(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(paths.items()):
        out[path] = {}
        for method, operation in methods.items():
            out[path][method] = operation
            if "requestBody" in operation:
                responses = {**_BODY_ERRORS, **operation["responses"]}
                out[path][method] = {**operation, "responses": dict(sorted(responses.items()))}
    return out


def document(app: web.Application) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "HomeIQ add-on API", "version": __version__},
        "servers": [{"url": f"http://homeiq:{app[CONFIG].port}"}],
        "security": [{"bearer": []}],
        "paths": _with_body_errors(app[OPENAPI]),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Event": event_schema(),
                "StoredEvent": stored_event_schema(),
                "Batch": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["batch_id", "source", "events"],
                    "properties": {
                        "batch_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                        "source": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["instance_id", "integration_version"],
                            "properties": {"instance_id": _STR, "integration_version": _STR},
                        },
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_EVENTS,
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                    },
                },
                "Ack": {
                    "type": "object",
                    "properties": {
                        "batch_id": _STR,
                        "accepted": {"type": "integer"},
                        "duplicate": {"type": "boolean"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": _STR, "message": _STR},
                },
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
    add_paths(app, STORE_PATHS)
