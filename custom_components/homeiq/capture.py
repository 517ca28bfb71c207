"""The bus listener: a compiled filter and an append, nothing else on the event loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import fnmatch
import re
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED, MATCH_ALL
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, State, callback

from .const import (
    CAPTURE_EVENT_TYPES,
    CAPTURE_STATE_CHANGES,
    CONF_CAPTURE_MODE,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_LABELS,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_LABELS,
    CONF_INCLUDE_STATE_REPORTED,
)
from .enrich import Columns, EntityInfo

# Events whose context starts a chain we attribute later state changes to.
CAUSE_EVENTS = {"automation_triggered": "automation", "script_started": "script"}
CONTEXT_MEMORY = 20_000
STATE_EVENTS = frozenset({EVENT_STATE_CHANGED, EVENT_STATE_REPORTED})


def _glob_regex(globs: list[str]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


@dataclass(slots=True)
class _Rules:
    entity_re: re.Pattern[str] | None
    domains: frozenset[str]
    areas: frozenset[str]
    labels: frozenset[str]

    @property
    def empty(self) -> bool:
        return not (self.entity_re or self.domains or self.areas or self.labels)

    def match(self, entity_id: str, info: EntityInfo) -> bool:
        if self.entity_re is not None and self.entity_re.match(entity_id):
            return True
        if entity_id.partition(".")[0] in self.domains:
            return True
        if info.area_id is not None and info.area_id in self.areas:
            return True
        return bool(self.labels and self.labels.intersection(info.labels))


class CaptureFilter:
    """Decide per event; per-entity decisions are cached so each check is a dict lookup."""

    def __init__(self, options: Mapping[str, Any], entity_info: Callable[[str], EntityInfo]):
        """Compile the options once."""
        self.mode: str = options.get(CONF_CAPTURE_MODE, "all")
        self.event_types = frozenset(options.get(CONF_EVENT_TYPES) or ())
        self._include = _Rules(
            _glob_regex(list(options.get(CONF_INCLUDE_ENTITIES) or ())),
            frozenset(options.get(CONF_INCLUDE_DOMAINS) or ()),
            frozenset(options.get(CONF_INCLUDE_AREAS) or ()),
            frozenset(options.get(CONF_INCLUDE_LABELS) or ()),
        )
        self._exclude = _Rules(
            _glob_regex(list(options.get(CONF_EXCLUDE_ENTITIES) or ())),
            frozenset(options.get(CONF_EXCLUDE_DOMAINS) or ()),
            frozenset(options.get(CONF_EXCLUDE_AREAS) or ()),
            frozenset(options.get(CONF_EXCLUDE_LABELS) or ()),
        )
        self._no_entity_rules = self._include.empty and self._exclude.empty
        self._entity_info = entity_info
        self._decisions: dict[str, bool] = {}

    def invalidate(self) -> None:
        """Forget per-entity decisions (registries changed: areas and labels may differ)."""
        self._decisions = {}

    def accept(self, event: Event[Any]) -> bool:
        """Return whether to capture this event."""
        event_type = event.event_type
        if event_type in STATE_EVENTS:
            if self.mode == CAPTURE_EVENT_TYPES and event_type not in self.event_types:
                return False
            return self._no_entity_rules or self.accept_entity(event.data["entity_id"])
        if self.mode == CAPTURE_STATE_CHANGES:
            return False
        return self.mode != CAPTURE_EVENT_TYPES or event_type in self.event_types

    def accept_entity(self, entity_id: str) -> bool:
        """Apply the entity rules (cached per entity)."""
        decision = self._decisions.get(entity_id)
        if decision is None:
            decision = self._decide(entity_id)
            self._decisions[entity_id] = decision
        return decision

    def accept_reported(self, data: Mapping[str, Any]) -> bool:
        """The bus-level filter of the state_reported listener (gets the event data)."""
        if self.mode == CAPTURE_EVENT_TYPES and EVENT_STATE_REPORTED not in self.event_types:
            return False
        return self._no_entity_rules or self.accept_entity(data["entity_id"])

    def _decide(self, entity_id: str) -> bool:
        info = self._entity_info(entity_id)
        if self._exclude.match(entity_id, info):
            return False
        return self._include.empty or self._include.match(entity_id, info)


class Capture:
    """Own the bus listeners and the in-memory buffer they append to."""

    def __init__(
        self,
        hass: HomeAssistant,
        entity_info: Callable[[str], EntityInfo],
        on_buffer: Callable[[int], None],
    ) -> None:
        """`on_buffer(len)` is told the buffer length after each append."""
        self.hass = hass
        self.buffer = Columns()
        self.captured_total = 0
        # context id -> (kind, name, entity_id) of the automation/script that started it
        self.context_causes: dict[str, tuple[str, str | None, str | None]] = {}
        self._entity_info = entity_info
        self._on_buffer = on_buffer
        self.filter = CaptureFilter({}, entity_info)
        self._unsub_all: CALLBACK_TYPE | None = None
        self._unsub_reported: CALLBACK_TYPE | None = None

    @callback
    def apply_options(self, options: Mapping[str, Any]) -> None:
        """Swap in a new filter and add/remove the state_reported listener."""
        self.filter = CaptureFilter(options, self._entity_info)
        if self._unsub_all is None:
            self._unsub_all = self.hass.bus.async_listen(MATCH_ALL, self._listener)
        want_reported = bool(options.get(CONF_INCLUDE_STATE_REPORTED))
        if want_reported and self._unsub_reported is None:
            # state_reported is never delivered to MATCH_ALL listeners.
            self._unsub_reported = self.hass.bus.async_listen(
                EVENT_STATE_REPORTED, self._append, event_filter=self._reported_filter
            )
        elif not want_reported and self._unsub_reported is not None:
            self._unsub_reported()
            self._unsub_reported = None

    @callback
    def stop(self) -> None:
        """Remove the listeners; the buffer stays for the final flush."""
        for unsub in (self._unsub_all, self._unsub_reported):
            if unsub is not None:
                unsub()
        self._unsub_all = self._unsub_reported = None

    @callback
    def _listener(self, event: Event[Any]) -> None:
        kind = CAUSE_EVENTS.get(str(event.event_type))
        if kind is not None:
            self._remember_cause(event, kind)
        if self.filter.accept(event):
            self._append(event)

    @callback
    def _reported_filter(self, data: Mapping[str, Any]) -> bool:
        return self.filter.accept_reported(data)

    @callback
    def _append(self, event: Event[Any]) -> None:
        # Plain values appended to column lists: no object the garbage collector tracks is
        # created or kept, so capture does not make HA's collections run more often.
        context = event.context
        data = event.data
        cols = self.buffer
        cols.event_type.append(event.event_type)  # type: ignore[arg-type]  # a str subclass
        cols.fired.append(event.time_fired_timestamp)
        cols.origin.append(event.origin.value)
        cols.context_id.append(context.id)
        cols.user_id.append(context.user_id)
        cols.parent_id.append(context.parent_id)
        if "new_state" in data:
            cols.entity_id.append(data["entity_id"])
            new: State | None = data["new_state"]
            if new is None:
                cols.value.append(None)
                cols.attrs_key.append(None)
                cols.new_changed.append(None)
            else:
                attributes = new.attributes
                key = id(attributes)
                cols.attributes[key] = attributes
                cols.value.append(new.state)
                cols.attrs_key.append(key)
                cols.new_changed.append(new.last_changed_timestamp)
            old: State | None = data.get("old_state")
            cols.old_state.append(None if old is None else old.state)
            cols.old_changed.append(None if old is None else old.last_changed_timestamp)
        else:
            cols.entity_id.append(None)
            cols.value.append(data)
            cols.attrs_key.append(None)
            cols.new_changed.append(None)
            cols.old_state.append(None)
            cols.old_changed.append(None)
        self.captured_total += 1
        self._on_buffer(len(cols.fired))

    def take(self) -> Columns:
        """Hand the buffer to the flush and start a new one."""
        taken = self.buffer
        self.buffer = Columns()
        return taken

    def _remember_cause(self, event: Event[Any], kind: str) -> None:
        causes = self.context_causes
        causes[event.context.id] = (kind, event.data.get("name"), event.data.get("entity_id"))
        if len(causes) > CONTEXT_MEMORY:
            # dicts keep insertion order: dropping the first entry forgets the oldest
            del causes[next(iter(causes))]
