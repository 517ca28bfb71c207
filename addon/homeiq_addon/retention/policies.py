"""Retention policies: the wire model, its validator and how an event finds its policy.

A policy says how long each tier is kept: raw events, hourly rollups, daily rollups.
The built-in ``default`` policy comes from the add-on options; overrides match by
entity glob, domain (or domain glob) or event type, and may leave a tier out to inherit
it from the default. ``"forever"`` keeps a tier without limit.
"""

from __future__ import annotations

from dataclasses import dataclass
import fnmatch
import re
from typing import Any, Final, Literal

import voluptuous as vol

from ..errors import InvalidPolicy

DEFAULT_NAME: Final = "default"
FOREVER: Final = "forever"
TIERS: Final = ("raw_days", "hourly_days", "daily_days")
MATCH_TYPES: Final = ("entity", "domain", "event_type")
# A more specific kind of match wins: an entity glob names fewer events than a domain,
# and a domain fewer than an event type such as state_changed.
_PRECEDENCE: Final = {"entity": 0, "domain": 1, "event_type": 2}
_MAX_DAYS: Final = 36_500.0

_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_GLOB_PART: Final = r"[a-z0-9_*?\[\]!-]+"
_ENTITY_GLOB_RE: Final = re.compile(rf"^{_GLOB_PART}\.{_GLOB_PART}$")
_DOMAIN_GLOB_RE: Final = re.compile(rf"^{_GLOB_PART}$")
_EVENT_TYPE_RE: Final = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,64}$")

Days = float | None  # None = forever
MatchType = Literal["default", "entity", "domain", "event_type"]


def _check_brackets(pattern: str) -> None:
    """Reject unbalanced or empty ``[...]`` sets: fnmatch would silently treat them as text."""
    depth = 0
    previous = ""
    for char in pattern:
        if char == "[":
            if depth:
                raise vol.Invalid("nested '[' in glob")
            depth = 1
        elif char == "]" and depth:
            if previous == "[":
                raise vol.Invalid("empty '[]' set in glob")
            depth = 0
        elif char == "]":
            raise vol.Invalid("unmatched ']' in glob")
        previous = char
    if depth:
        raise vol.Invalid("unclosed '[' in glob")


def _days(value: Any) -> float | str | None:
    if value is None or value == FOREVER:
        return None if value is None else FOREVER  # None: inherit from the default policy
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise vol.Invalid('expected a positive number of days or "forever"')
    if not value > 0:
        raise vol.Invalid("must be a positive number of days")
    if value > _MAX_DAYS:
        raise vol.Invalid(f'must be at most {_MAX_DAYS:g} days (use "forever")')
    return float(value)


def _required_days(value: Any) -> float | str:
    days = _days(value)
    if days is None:
        raise vol.Invalid('the default policy needs a number of days or "forever"')
    return days


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise vol.Invalid("expected 1-64 characters a-z 0-9 _ - starting with a letter or digit")
    return value


POLICY_SCHEMA: Final = vol.Schema(
    {
        vol.Required("name"): _name,
        vol.Required("match_type"): vol.In(MATCH_TYPES),
        vol.Required("pattern"): vol.All(str, vol.Length(min=1, max=255)),
        vol.Optional("raw_days"): _days,
        vol.Optional("hourly_days"): _days,
        vol.Optional("daily_days"): _days,
        vol.Optional("description"): vol.Any(None, vol.All(str, vol.Length(max=500))),
    }
)
DEFAULT_SCHEMA: Final = vol.Schema(
    {
        vol.Optional("name"): DEFAULT_NAME,
        vol.Optional("match_type"): "default",
        vol.Optional("pattern"): None,
        vol.Required("raw_days"): _required_days,
        vol.Required("hourly_days"): _required_days,
        vol.Required("daily_days"): _required_days,
        vol.Optional("description"): vol.Any(None, vol.All(str, vol.Length(max=500))),
    }
)


def _path(error: vol.Invalid) -> str:
    return ".".join(str(part) for part in error.path) or "body"


def _check_pattern(match_type: str, pattern: str) -> None:
    regex = {"entity": _ENTITY_GLOB_RE, "domain": _DOMAIN_GLOB_RE}.get(match_type, _EVENT_TYPE_RE)
    if not regex.match(pattern):
        expected = {
            "entity": "an entity glob like sensor.*_power (lower case, one dot)",
            "domain": "a domain or domain glob like sensor or light*",
        }.get(match_type, "an event type (1-64 characters, no spaces)")
        raise InvalidPolicy(f"pattern: {pattern!r} is not {expected}")
    try:
        _check_brackets(pattern)
    except vol.Invalid as err:
        raise InvalidPolicy(f"pattern: {err.msg}") from err


@dataclass(frozen=True, slots=True)
class Policy:
    """One retention policy; tier values are days, None = forever, and for overrides
    ``inherit`` lists the tiers taken from the default policy."""

    name: str
    match_type: MatchType
    pattern: str | None
    raw_days: Days
    hourly_days: Days
    daily_days: Days
    inherit: frozenset[str] = frozenset()
    description: str | None = None

    @classmethod
    def from_body(cls, body: Any, *, default: bool = False) -> Policy:
        """Validate a request body (raises InvalidPolicy naming the field)."""
        if not isinstance(body, dict):
            raise InvalidPolicy("body: expected a JSON object")
        try:
            data = (DEFAULT_SCHEMA if default else POLICY_SCHEMA)(body)
        except vol.MultipleInvalid as err:
            raise InvalidPolicy(f"{_path(err.errors[0])}: {err.errors[0].msg}") from err
        if default:
            return cls(
                DEFAULT_NAME, "default", None, _tier(data["raw_days"]),
                _tier(data["hourly_days"]), _tier(data["daily_days"]),
                description=data.get("description"),
            )  # fmt: skip
        if data["name"] == DEFAULT_NAME:
            raise InvalidPolicy("name: 'default' is the built-in policy; edit it with PUT")
        _check_pattern(data["match_type"], data["pattern"])
        inherit = frozenset(t for t in TIERS if data.get(t) is None)
        if len(inherit) == len(TIERS):
            raise InvalidPolicy("body: set at least one of raw_days, hourly_days, daily_days")
        return cls(
            data["name"], data["match_type"], data["pattern"], _tier(data.get("raw_days")),
            _tier(data.get("hourly_days")), _tier(data.get("daily_days")), inherit=inherit,
            description=data.get("description"),
        )  # fmt: skip

    def resolved(self, default: Policy) -> Policy:
        """This policy with inherited tiers filled in from the default."""
        values = {t: getattr(default if t in self.inherit else self, t) for t in TIERS}
        return Policy(self.name, self.match_type, self.pattern, **values)

    def matches(self, entity_id: str | None, domain: str | None, event_type: str | None) -> bool:
        if self.match_type == "default":
            return True
        assert self.pattern is not None
        value = {"entity": entity_id, "domain": domain, "event_type": event_type}[self.match_type]
        return value is not None and fnmatch.fnmatchcase(value, self.pattern)

    def to_json(self) -> dict[str, Any]:
        def tier(name: str) -> float | str | None:
            if name in self.inherit:
                return None
            value: float | None = getattr(self, name)
            return FOREVER if value is None else value

        return {
            "name": self.name,
            "match_type": self.match_type,
            "pattern": self.pattern,
            **{t: tier(t) for t in TIERS},
            "description": self.description,
            "builtin": self.match_type == "default",
        }


def _tier(value: float | str | None) -> Days:
    return None if value is None or isinstance(value, str) else float(value)


class PolicySet:
    """The default plus overrides, resolving which one governs an event.

    Precedence: entity glob, then domain, then event type; among several matches of the
    same kind the longest pattern (the most specific one) wins, then the name.
    """

    def __init__(self, default: Policy, overrides: list[Policy]) -> None:
        self.default = default
        self.declared = sorted(overrides, key=lambda p: p.name)  # as written, for the API
        self.overrides = sorted(
            (p.resolved(default) for p in overrides),
            key=lambda p: (_PRECEDENCE[p.match_type], -len(p.pattern or ""), p.name),
        )
        self._cache: dict[tuple[str | None, str | None, str | None], Policy] = {}

    @property
    def all(self) -> list[Policy]:
        return [self.default, *self.overrides]

    def for_event(
        self, entity_id: str | None, domain: str | None, event_type: str | None
    ) -> Policy:
        key = (entity_id, domain, event_type)
        found = self._cache.get(key)
        if found is None:
            if domain is None and entity_id is not None and "." in entity_id:
                domain = entity_id.split(".", 1)[0]
            found = next(
                (p for p in self.overrides if p.matches(entity_id, domain, event_type)),
                self.default,
            )
            self._cache[key] = found
        return found
