"""The ingest wire contract: THE validator of a batch, defined with voluptuous.

Every rule lives once, in ``EVENT_FIELDS`` and the predicate functions below. The
voluptuous schema is built from them, and so is ``check_batch``'s fast path, which runs
the very same predicates without voluptuous' per-key machinery. The fast path only ever
says "valid"; whenever it has a doubt it hands the whole batch to voluptuous, which
either accepts it or raises the exact error with its field path. So the fast path can
accept nothing the schema rejects (tests/addon/test_schema.py checks this on mutations).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
import math
import re
from typing import Any, Final

import voluptuous as vol

MAX_EVENTS: Final = 5000
MAX_STR: Final = 255
STATE_EVENT_TYPES: Final = frozenset({"state_changed", "state_reported"})
ORIGINS: Final = ("LOCAL", "REMOTE")
CAUSES: Final = ("user", "automation", "script", "device", "integration", "system")
_BATCH_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENTITY_ID_RE: Final = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_MAX_INT: Final = 2**53


class BatchInvalid(ValueError):
    """A batch that breaks the wire contract; the message names the field path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Predicates shared by both paths. Each answers True only for a valid value.
def is_str(value: Any, max_len: int = MAX_STR, min_len: int = 0) -> bool:
    return type(value) is str and min_len <= len(value) <= max_len


def is_number(value: Any) -> bool:
    # bool is an int subclass and JSON true is not a number; huge ints must still fit
    # a float, and NaN/inf have no JSON spelling.
    t = type(value)
    if t is float:
        return math.isfinite(value)
    return t is int and -_MAX_INT <= value <= _MAX_INT


def is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 1_000_000


def parse_time_us(value: Any) -> int | None:
    """UTC epoch microseconds of an ISO 8601 string with an offset, else None."""
    if type(value) is not str or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    offset = parsed.utcoffset()
    if offset is None:
        return None
    # Integer arithmetic, so the microseconds survive exactly (a float timestamp would not).
    naive = parsed.replace(tzinfo=None) - offset
    delta = naive - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH: Final = datetime(1970, 1, 1)


def is_time(value: Any) -> bool:
    return parse_time_us(value) is not None


def is_str_list(value: Any) -> bool:
    return type(value) is list and len(value) <= 100 and all(is_str(v) for v in value)


def is_object(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str for k in value)


# name -> (required, nullable, predicate, message when the predicate fails)
Pred = Callable[[Any], bool]
_STR: Final[tuple[Pred, str]] = (is_str, f"expected string of at most {MAX_STR} characters")
_NUM: Final[tuple[Pred, str]] = (is_number, "expected finite number")
_TIME: Final[tuple[Pred, str]] = (is_time, "expected ISO 8601 datetime with UTC offset")
_ID64: Final[tuple[Pred, str]] = (
    lambda v: is_str(v, 64, 1),
    "expected string of 1 to 64 characters",
)
EVENT_FIELDS: Final[dict[str, tuple[bool, bool, Pred, str]]] = {
    "time_fired": (True, False, *_TIME),
    "event_type": (
        True,
        False,
        lambda v: is_str(v, 64, 1),
        "expected string of 1 to 64 characters",
    ),
    "origin": (True, False, lambda v: v in ORIGINS and type(v) is str, "expected LOCAL or REMOTE"),
    "context_id": (True, False, *_ID64),
    "context_user_id": (False, True, *_ID64),
    "context_parent_id": (False, True, *_ID64),
    "data": (False, True, is_object, "expected object"),
    "entity_id": (
        False,
        True,
        lambda v: is_str(v) and _ENTITY_ID_RE.match(v) is not None,
        "expected entity id like domain.object_id",
    ),
    "domain": (False, True, *_STR),
    "state": (False, True, *_STR),
    "old_state": (False, True, *_STR),
    "numeric_value": (False, True, *_NUM),
    "last_changed": (False, True, *_TIME),
    "prev_state_seconds": (False, True, *_NUM),
    "attributes": (False, True, is_object, "expected object"),
    "area_id": (False, True, *_STR),
    "area": (False, True, *_STR),
    "floor": (False, True, *_STR),
    "device_id": (False, True, *_STR),
    "device_name": (False, True, *_STR),
    "device_manufacturer": (False, True, *_STR),
    "device_model": (False, True, *_STR),
    "labels": (False, True, is_str_list, "expected list of at most 100 strings"),
    "device_class": (False, True, *_STR),
    "state_class": (False, True, *_STR),
    "unit": (False, True, *_STR),
    "friendly_name": (False, True, *_STR),
    "cause": (
        False,
        True,
        lambda v: v in CAUSES and type(v) is str,
        "expected one of " + ", ".join(CAUSES),
    ),
    "cause_name": (False, True, *_STR),
    "cause_id": (False, True, *_STR),
    "outdoor_temperature": (False, True, *_NUM),
    "weather_condition": (False, True, *_STR),
    "sun_elevation": (False, True, *_NUM),
    "people_home": (False, True, is_count, "expected integer from 0 to 1000000"),
}
REQUIRED_FIELDS: Final = frozenset(k for k, (req, *_) in EVENT_FIELDS.items() if req)
ALLOWED_FIELDS: Final = frozenset(EVENT_FIELDS)


def _validator(pred: Pred, message: str, nullable: bool) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        if (value is None and nullable) or pred(value):
            return value
        raise vol.Invalid(message)

    return validate


def _entity_required(event: dict[str, Any]) -> dict[str, Any]:
    if event["event_type"] in STATE_EVENT_TYPES and event.get("entity_id") is None:
        raise vol.Invalid("required for state events", path=["entity_id"])
    return event


EVENT_SCHEMA: Final = vol.All(
    vol.Schema(
        {
            (vol.Required(k) if req else vol.Optional(k)): _validator(pred, msg, nullable)
            for k, (req, nullable, pred, msg) in EVENT_FIELDS.items()
        },
        extra=vol.PREVENT_EXTRA,
    ),
    _entity_required,
)
BATCH_SCHEMA: Final = vol.Schema(
    {
        vol.Required("batch_id"): _validator(
            lambda v: type(v) is str and _BATCH_ID_RE.match(v) is not None,
            "expected 1 to 64 characters from A-Z a-z 0-9 _ -",
            False,
        ),
        vol.Required("source"): {
            vol.Required("instance_id"): _validator(_ID64[0], _ID64[1], False),
            vol.Required("integration_version"): _validator(
                lambda v: is_str(v, 32, 1), "expected string of 1 to 32 characters", False
            ),
        },
        vol.Required("events"): vol.All(
            vol.Length(min=1, max=MAX_EVENTS, msg=f"expected 1 to {MAX_EVENTS} events"),
            [EVENT_SCHEMA],
        ),
    },
    extra=vol.PREVENT_EXTRA,
)


def _path(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validate_batch(obj: Any) -> dict[str, Any]:
    """Validate a decoded batch with voluptuous; raise BatchInvalid naming the path."""
    if not isinstance(obj, dict):
        raise BatchInvalid("body: expected a JSON object")
    try:
        result: dict[str, Any] = BATCH_SCHEMA(obj)
    except vol.MultipleInvalid as err:
        first = err.errors[0]
        raise BatchInvalid(f"{_path(list(first.path))}: {first.msg}") from None
    except vol.Invalid as err:
        raise BatchInvalid(f"{_path(list(err.path))}: {err.msg}") from None
    return result


_CHECKS: Final = {k: (nullable, pred) for k, (_r, nullable, pred, _m) in EVENT_FIELDS.items()}


def _fast_event(event: Any) -> bool:
    if type(event) is not dict:
        return False
    keys = event.keys()
    if not (keys >= REQUIRED_FIELDS and keys <= ALLOWED_FIELDS):
        return False
    checks = _CHECKS
    for key, value in event.items():
        nullable, pred = checks[key]
        if value is None:
            if not nullable:
                return False
        elif not pred(value):
            return False
    return event["event_type"] not in STATE_EVENT_TYPES or event.get("entity_id") is not None


def _fast_batch(obj: Any) -> bool:
    if type(obj) is not dict or obj.keys() != {"batch_id", "source", "events"}:
        return False
    batch_id, source, events = obj["batch_id"], obj["source"], obj["events"]
    if type(batch_id) is not str or _BATCH_ID_RE.match(batch_id) is None:
        return False
    if type(source) is not dict or source.keys() != {"instance_id", "integration_version"}:
        return False
    if not (is_str(source["instance_id"], 64, 1) and is_str(source["integration_version"], 32, 1)):
        return False
    if type(events) is not list or not 1 <= len(events) <= MAX_EVENTS:
        return False
    return all(_fast_event(e) for e in events)


def check_batch(obj: Any) -> dict[str, Any]:
    """validate_batch, but cheap for the common valid batch (same verdict, same errors)."""
    if _fast_batch(obj):
        result: dict[str, Any] = obj
        return result
    return validate_batch(obj)
