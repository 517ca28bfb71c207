"""OpenAPI declarations of retention's routes (policies, runs, stats).

A policy is no payload of the integration's contract (contract.py): only the panel and
people send it, so its schema is written out here, beside the validator (policies.py).
"""

from __future__ import annotations

from typing import Any, Final

from ..server.openapi import TIME, answer, error_answer, operation, path_param

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


_BAD = {
    "400": error_answer("malformed body"),
    "422": error_answer("invalid; the message names the field"),
}
_RUN_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dry_run": {"type": "boolean"},
        "now": {**TIME, "description": "simulated clock (--dev only)"},
    },
}
_P = "/api/v1/retention/policies"
_NAME = [path_param("name")]
_POLICIES = {
    "type": "object",
    "required": ["policies"],
    "properties": {"policies": {"type": "array", "items": POLICY_ANSWER}},
}

PATHS: Final[dict[str, dict[str, Any]]] = {
    _P: {
        "get": operation(
            "Retention policies (the default first)",
            {"200": answer("policies", _POLICIES)},
        ),
        "post": operation(
            "Add a policy",
            {"201": answer("created", POLICY_ANSWER), "409": error_answer("name taken"), **_BAD},
            body=POLICY,
        ),
    },
    _P + "/{name}": {
        "get": operation(
            "One policy",
            {"200": answer("policy", POLICY_ANSWER), "404": error_answer("unknown")},
            parameters=_NAME,
        ),
        "put": operation(
            "Replace a policy (the default too)",
            {"200": answer("updated", POLICY_ANSWER), "404": error_answer("unknown"), **_BAD},
            body=_POLICY_PUT,
            parameters=_NAME,
        ),
        "delete": operation(
            "Delete a policy",
            {
                "200": answer("deleted"),
                "400": error_answer("the default"),
                "404": error_answer("unknown"),
            },
            parameters=_NAME,
        ),
    },
    "/api/v1/retention/run": {
        "post": operation(
            "Run retention now; a dry run reports per policy what it would delete",
            {
                "200": answer("per-policy report"),
                "400": error_answer("bad body"),
                "409": error_answer("a run is in progress"),
            },
            body=_RUN_BODY,
        ),
    },
    "/api/v1/retention/stats": {
        "get": operation(
            "Rows, bytes, oldest/newest per tier; last and next run",
            {"200": answer("retention stats")},
        ),
    },
}
