"""OpenAPI declarations of the routes RETENTION adds (merged by openapi.add_paths)."""

from __future__ import annotations

from typing import Any, Final

_STR: Final[dict[str, Any]] = {"type": "string"}
_TIME: Final[dict[str, Any]] = {"type": "string", "format": "date-time"}
_SOME_DAYS: Final[dict[str, Any]] = {"type": "number", "exclusiveMinimum": 0, "maximum": 36500}
_DAYS: Final[dict[str, Any]] = {
    "anyOf": [_SOME_DAYS, {"const": "forever"}, {"type": "null"}],
    "description": 'days, "forever", or null to inherit from the default policy',
}
_DEFAULT_DAYS: Final[dict[str, Any]] = {"anyOf": [_SOME_DAYS, {"const": "forever"}]}
_DESCRIPTION: Final[dict[str, Any]] = {
    "anyOf": [{"type": "string", "maxLength": 500}, {"type": "null"}]
}
POLICY: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "match_type", "pattern"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
        "match_type": {"enum": ["entity", "domain", "event_type"]},
        "pattern": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "description": "glob (entity, domain) or event type",
        },
        "raw_days": _DAYS,
        "hourly_days": _DAYS,
        "daily_days": _DAYS,
        "description": _DESCRIPTION,
    },
}
# PUT: the name comes from the URL; the default policy is edited with its own shape.
_POLICY_PUT: Final[dict[str, Any]] = {
    "anyOf": [
        {**POLICY, "required": ["match_type", "pattern"]},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["raw_days", "hourly_days", "daily_days"],
            "description": "the default policy (PUT .../policies/default)",
            "properties": {
                "name": {"const": "default"},
                "match_type": {"const": "default"},
                "pattern": {"type": "null"},
                "raw_days": _DEFAULT_DAYS,
                "hourly_days": _DEFAULT_DAYS,
                "daily_days": _DEFAULT_DAYS,
                "description": _DESCRIPTION,
            },
        },
    ]
}
# What the service answers: the built-in default policy too, and `builtin`.
POLICY_ANSWER: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "name",
        "match_type",
        "pattern",
        "builtin",
        "raw_days",
        "hourly_days",
        "daily_days",
    ],
    "properties": {
        **POLICY["properties"],
        "match_type": {"enum": ["default", "entity", "domain", "event_type"]},
        "pattern": {"type": ["string", "null"], "description": "null for the default policy"},
        "builtin": {"type": "boolean", "description": "true for the default policy"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json({"$ref": "#/components/schemas/Error"})}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": _json(schema or {"type": "object"})}


def _op(
    summary: str,
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {**responses, "401": _err("missing or wrong token")},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if name is not None:
        op["parameters"] = [{"name": name, "in": "path", "required": True, "schema": _STR}]
    return op


_BAD = {"400": _err("malformed body"), "422": _err("invalid; the message names the field")}
_RUN_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dry_run": {"type": "boolean"},
        "now": {**_TIME, "description": "simulated clock (--dev only)"},
    },
}
_EXPORT_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["start", "end"],
    "properties": {"start": _TIME, "end": _TIME, "format": {"enum": ["jsonl", "csv"]}},
}
_P = "/api/v1/retention/policies"
_POLICIES = {
    "type": "object",
    "required": ["policies"],
    "properties": {"policies": {"type": "array", "items": POLICY_ANSWER}},
}

PATHS: Final[dict[str, dict[str, Any]]] = {
    _P: {
        "get": _op(
            "Retention policies (the default first)",
            {"200": _ok("policies", _POLICIES)},
        ),
        "post": _op(
            "Add a policy",
            {"201": _ok("created", POLICY_ANSWER), "409": _err("name taken"), **_BAD},
            POLICY,
        ),
    },
    _P + "/{name}": {
        "get": _op(
            "One policy",
            {"200": _ok("policy", POLICY_ANSWER), "404": _err("unknown")},
            name="name",
        ),
        "put": _op(
            "Replace a policy (the default too)",
            {"200": _ok("updated", POLICY_ANSWER), "404": _err("unknown"), **_BAD},
            _POLICY_PUT,
            name="name",
        ),
        "delete": _op(
            "Delete a policy",
            {"200": _ok("deleted"), "400": _err("the default"), "404": _err("unknown")},
            name="name",
        ),
    },
    "/api/v1/retention/run": {
        "post": _op(
            "Run retention now; a dry run reports per policy what it would delete",
            {
                "200": _ok("per-policy report"),
                "400": _err("bad body"),
                "409": _err("a run is in progress"),
            },
            _RUN_BODY,
        ),
    },
    "/api/v1/retention/stats": {
        "get": _op(
            "Rows, bytes, oldest/newest per tier; last and next run",
            {"200": _ok("retention stats")},
        ),
    },
    "/api/v1/backups": {
        "get": _op("Backups, newest first", {"200": _ok("backups")}),
        "post": _op(
            "Create a consistent backup while ingest goes on", {"201": _ok("the new backup")}
        ),
    },
    "/api/v1/backups/{name}/restore": {
        "post": _op(
            "Restore a backup after checking its integrity and its whole schema (an older"
            " version's is migrated on a copy); the data it replaces is kept as a new backup"
            " (previous_data)",
            {
                "200": _ok("restored"),
                "400": _err("bad name"),
                "404": _err("unknown"),
                "422": _err("corrupt, foreign or altered file; live data untouched"),
                "507": _err(
                    "no room for the checked copy or to keep the current data first;"
                    " live data untouched"
                ),
            },
            name="name",
        ),
    },
    "/api/v1/backups/{name}": {
        "delete": _op(
            "Delete a backup",
            {"200": _ok("deleted"), "400": _err("bad name"), "404": _err("unknown")},
            name="name",
        ),
    },
    "/api/v1/export": {
        "post": _op(
            "Export a time range as gzip JSONL or CSV into the share folder",
            {
                "201": _ok("the file written"),
                "400": _err("bad body"),
                "507": _err("share folder not writable"),
            },
            _EXPORT_BODY,
        ),
    },
}
