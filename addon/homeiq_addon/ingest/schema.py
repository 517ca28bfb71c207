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
from datetime import UTC, datetime, timedelta
import math
import re
from typing import Any, Final

import orjson
import voluptuous as vol

MAX_EVENTS: Final = 5000
MAX_STR: Final = 255
STATE_EVENT_TYPES: Final = frozenset({"state_changed", "state_reported"})
ORIGINS: Final = ("LOCAL", "REMOTE")
CAUSES: Final = ("user", "automation", "script", "device", "integration", "system")
_BATCH_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENTITY_ID_RE: Final = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_MAX_INT: Final = 2**53
# The times the store takes (time_fired, last_changed, and every time a client asks
# with): any real event fits, and every reader can turn them back into a date, which
# year 1 or 9999 with an offset cannot (datetime ends at 9999-12-31).
TIME_MIN: Final = datetime(1970, 1, 1, tzinfo=UTC)
TIME_END: Final = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
TIME_EXPECTED: Final = (
    "expected ISO 8601 datetime with UTC offset, from 1970-01-01 to before 2200-01-01 (UTC)"
)
# How deep `data` and `attributes` may nest (objects and arrays, the value itself being
# level 1): orjson's limit, which writes them into the store (tests pin it).
MAX_NESTING: Final = 254


class BatchInvalid(ValueError):
    """A batch that breaks the wire contract; the message names the field path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_time_us(value: Any) -> int | None:
    """UTC epoch microseconds of an ISO 8601 string with an offset in the accepted range
    (TIME_MIN to TIME_END), else None."""
    if type(value) is not str or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # Aware minus aware, floor-divided by 1 µs: exact integer arithmetic (a float
        # timestamp would round the microseconds).
        us = (parsed - _EPOCH) // _ONE_US
    except (ValueError, TypeError, OverflowError):
        # TypeError: a naive datetime (no offset) cannot be subtracted from an aware one.
        return None
    return us if _MIN_US <= us < _END_US else None


def fits_json(value: Any) -> bool:
    """Whether the store can write the value back as JSON: nested at most MAX_NESTING
    levels deep (and, for values not parsed from JSON, integers within 64 bits)."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_MIN_US: Final = (TIME_MIN - _EPOCH) // _ONE_US
_END_US: Final = (TIME_END - _EPOCH) // _ONE_US

# Each rule is ONE Python expression over `v`. It is compiled once into the function
# voluptuous calls and once inlined into the fast path, so both run the same test.
_NS: Final[dict[str, Any]] = {
    "parse_time_us": parse_time_us,
    "fits_json": fits_json,
    "isfinite": math.isfinite,
    "CAUSES": frozenset(CAUSES),
    "ENTITY_ID_RE": _ENTITY_ID_RE,
    "MAX_INT": _MAX_INT,
    "MAX_STR": MAX_STR,
}
_STR: Final = (
    "type(v) is str and len(v) <= MAX_STR",
    f"expected string of at most {MAX_STR} characters",
)
_ID64: Final = ("type(v) is str and 0 < len(v) <= 64", "expected string of 1 to 64 characters")
_NUM: Final = (
    "(type(v) is float and isfinite(v)) or (type(v) is int and -MAX_INT <= v <= MAX_INT)",
    "expected finite number",
)
_TIME: Final = ("parse_time_us(v) is not None", TIME_EXPECTED)
_OBJ: Final = (
    "type(v) is dict and all(type(k) is str for k in v) and fits_json(v)",
    f"expected object nested at most {MAX_NESTING} levels deep",
)
# name -> (required, nullable, rule expression, message when the rule fails)
EVENT_FIELDS: Final[dict[str, tuple[bool, bool, str, str]]] = {
    "time_fired": (True, False, *_TIME),
    "event_type": (True, False, *_ID64),
    "origin": (True, False, "v == 'LOCAL' or v == 'REMOTE'", "expected LOCAL or REMOTE"),
    "context_id": (True, False, *_ID64),
    "context_user_id": (False, True, *_ID64),
    "context_parent_id": (False, True, *_ID64),
    "data": (False, True, *_OBJ),
    "entity_id": (
        False,
        True,
        "type(v) is str and len(v) <= MAX_STR and ENTITY_ID_RE.match(v) is not None",
        "expected entity id like domain.object_id",
    ),
    "domain": (False, True, *_STR),
    "state": (False, True, *_STR),
    "old_state": (False, True, *_STR),
    "numeric_value": (False, True, *_NUM),
    "last_changed": (False, True, *_TIME),
    "last_reported": (False, True, *_TIME),
    "prev_state_seconds": (False, True, *_NUM),
    "attributes": (False, True, *_OBJ),
    "area_id": (False, True, *_STR),
    "area": (False, True, *_STR),
    "floor": (False, True, *_STR),
    "device_id": (False, True, *_STR),
    "device_name": (False, True, *_STR),
    "device_manufacturer": (False, True, *_STR),
    "device_model": (False, True, *_STR),
    "labels": (
        False,
        True,
        "type(v) is list and len(v) <= 100"
        " and all(type(x) is str and len(x) <= MAX_STR for x in v)",
        "expected list of at most 100 strings",
    ),
    "device_class": (False, True, *_STR),
    "state_class": (False, True, *_STR),
    "unit": (False, True, *_STR),
    "friendly_name": (False, True, *_STR),
    "cause": (
        False,
        True,
        "type(v) is str and v in CAUSES",
        "expected one of " + ", ".join(CAUSES),
    ),
    "cause_name": (False, True, *_STR),
    "cause_id": (False, True, *_STR),
    "outdoor_temperature": (False, True, *_NUM),
    "weather_condition": (False, True, *_STR),
    "sun_elevation": (False, True, *_NUM),
    "people_home": (
        False,
        True,
        "type(v) is int and 0 <= v <= 1000000",
        "expected integer from 0 to 1000000",
    ),
}
REQUIRED_FIELDS: Final = frozenset(k for k, (req, *_) in EVENT_FIELDS.items() if req)
ALLOWED_FIELDS: Final = frozenset(EVENT_FIELDS)

type Pred = Callable[[Any], bool]


def _compile(expr: str) -> Pred:
    # The expressions are constants of this module, never input.
    pred: Pred = eval(f"lambda v: {expr}", dict(_NS))  # noqa: S307
    return pred


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
            (vol.Required(k) if req else vol.Optional(k)): _validator(_compile(expr), msg, nullable)
            for k, (req, nullable, expr, msg) in EVENT_FIELDS.items()
        },
        extra=vol.PREVENT_EXTRA,
    ),
    _entity_required,
)
_BATCH_ID: Final = "type(v) is str and BATCH_ID_RE.match(v) is not None"
_VERSION: Final = "type(v) is str and 0 < len(v) <= 32"
_NS["BATCH_ID_RE"] = _BATCH_ID_RE
BATCH_SCHEMA: Final = vol.Schema(
    {
        vol.Required("batch_id"): _validator(
            _compile(_BATCH_ID),
            "expected 1 to 64 characters from A-Z a-z 0-9 _ -",
            False,
        ),
        vol.Required("source"): {
            vol.Required("instance_id"): _validator(_compile(_ID64[0]), _ID64[1], False),
            vol.Required("integration_version"): _validator(
                _compile(_VERSION), "expected string of 1 to 32 characters", False
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


def _fast_source() -> str:
    """The fast path's source: every rule of EVENT_FIELDS inlined, one `if` per field."""
    lines = [
        "def fast_event(ev):",
        "    if type(ev) is not dict: return False",
        "    keys = ev.keys()",
        "    if not (keys >= REQUIRED_FIELDS and keys <= ALLOWED_FIELDS): return False",
        "    get = ev.get",
    ]
    for name, (required, nullable, expr, _msg) in EVENT_FIELDS.items():
        lines.append(f"    v = get({name!r})")
        if required or not nullable:
            lines.append(f"    if v is None or not ({expr}): return False")
        else:
            lines.append(f"    if v is not None and not ({expr}): return False")
    lines += [
        "    return ev['event_type'] not in STATE_EVENT_TYPES or ev.get('entity_id') is not None",
        "def fast_batch(obj):",
        "    if type(obj) is not dict or obj.keys() != {'batch_id', 'source', 'events'}:",
        "        return False",
        "    v = obj['batch_id']",
        f"    if not ({_BATCH_ID}): return False",
        "    source = obj['source']",
        "    if type(source) is not dict or source.keys() != SOURCE_KEYS:",
        "        return False",
        "    v = source['instance_id']",
        f"    if not ({_ID64[0]}): return False",
        "    v = source['integration_version']",
        f"    if not ({_VERSION}): return False",
        "    events = obj['events']",
        "    if type(events) is not list or not 1 <= len(events) <= MAX_EVENTS: return False",
        "    for ev in events:",
        "        if not fast_event(ev): return False",
        "    return True",
    ]
    return "\n".join(lines)


def _build_fast() -> Callable[[Any], bool]:
    namespace = dict(
        _NS,
        REQUIRED_FIELDS=REQUIRED_FIELDS,
        ALLOWED_FIELDS=ALLOWED_FIELDS,
        STATE_EVENT_TYPES=STATE_EVENT_TYPES,
        MAX_EVENTS=MAX_EVENTS,
        SOURCE_KEYS={"instance_id", "integration_version"},
    )
    # Generated from this module's constants only (see _fast_source), never from input.
    exec(compile(_fast_source(), "<homeiq fast validator>", "exec"), namespace)  # noqa: S102
    fast: Callable[[Any], bool] = namespace["fast_batch"]
    return fast


_fast_batch: Final = _build_fast()


def check_batch(obj: Any) -> dict[str, Any]:
    """validate_batch, but cheap for the common valid batch (same verdict, same errors)."""
    if _fast_batch(obj):
        result: dict[str, Any] = obj
        return result
    return validate_batch(obj)
