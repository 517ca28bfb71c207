"""The bus listener: a compiled filter and an append, nothing else on the event loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
import fnmatch
import re
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED, MATCH_ALL
from homeassistant.core import CALLBACK_TYPE, Event, EventOrigin, HomeAssistant, State, callback
from homeassistant.util.dt import utc_from_timestamp
from homeassistant.util.event_type import EventType

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
from .enrich import EntityInfo

# What the listener keeps of an event: plain values, never HA's objects. Holding the
# Event would hold the reference cycle HA ties it to its Context; holding its data would
# hold two State objects, each with dicts of its own. Kept until the encoder took them,
# those reached the garbage collector's oldest generation: it ran 5 full collections
# where HA alone ran 3 over 150,000 state changes, each walking all of HA's objects. A
# tuple of strings, floats and datetimes is not tracked by the collector once it has
# looked at it.
#
# A state event (state_changed, state_reported):
#   0 event type, 1 entity id, 2 time fired (datetime), 3 origin ("LOCAL", "REMOTE"),
#   4 context id, 5 context user id, 6 context parent id,
#   7 state (None: the entity was removed), 8 old state, 9 last changed,
#   10 old state's last changed, 11 the state's attributes when they are another object
#   than the entity's previous captured state had (else None: unchanged; HA keeps the
#   same object while they are equal), 12 last reported (state_reported only).
# Any other event: 0 event type, 1 None, 2 time fired (timestamp), 3-6 as above, 7 data.
type StateCaptured = tuple[
    str,
    str,
    datetime,
    str,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    datetime | None,
    datetime | None,
    Mapping[str, Any] | None,
    datetime | None,
]
type OtherCaptured = tuple[
    EventType[Any] | str, None, float, str, str, str | None, str | None, Mapping[str, Any]
]
type Captured = StateCaptured | OtherCaptured

# Events whose context starts a chain we attribute later state changes to.
CAUSE_EVENTS = {"automation_triggered": "automation", "script_started": "script"}
CONTEXT_MEMORY = 20_000
STATE_EVENTS = frozenset({EVENT_STATE_CHANGED, EVENT_STATE_REPORTED})
_LOCAL = EventOrigin.local  # compared by identity: enum hashing and .value run Python code
# HA's event type constants are EventType objects, which the garbage collector tracks (a
# str subclass): a tuple holding one stays tracked. The plain strings are not.
_STATE_CHANGED = str(EVENT_STATE_CHANGED)
_STATE_REPORTED = str(EVENT_STATE_REPORTED)


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
        # Every event is taken (the default options): the listener skips `accept`.
        self.accepts_all = self.mode not in (CAPTURE_EVENT_TYPES, CAPTURE_STATE_CHANGES) and (
            self._no_entity_rules
        )
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
        on_full: Callable[[], None],
        full_at: int,
    ) -> None:
        """`on_full()` is called once when the buffer reaches `full_at` events."""
        self.hass = hass
        # The captured events' fields (Captured); serializing them waits for the flush.
        self.buffer: list[Captured] = []
        self._taken_total = 0
        # context id -> (kind, name, entity_id) of the automation/script that started it
        self.context_causes: dict[str, tuple[str, str | None, str | None]] = {}
        self._entity_info = entity_info
        self._on_full = on_full
        self._full_at = full_at
        self.filter = CaptureFilter({}, entity_info)
        self._unsub_all: CALLBACK_TYPE | None = None
        self._unsub_reported: CALLBACK_TYPE | None = None
        # entity id -> the attributes object of its last captured state (Captured's 11)
        self._attributes: dict[str, Mapping[str, Any]] = {}

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

    @property
    def captured_total(self) -> int:
        """Events captured since start."""
        return self._taken_total + len(self.buffer)

    @callback
    def _listener(self, event: Event[Any]) -> None:
        event_type = event.event_type
        if event_type in CAUSE_EVENTS:
            self._remember_cause(event)
        capture_filter = self.filter
        if capture_filter.accepts_all or capture_filter.accept(event):
            # A state change is kept here, inline: this runs for every event HA fires.
            if event_type == EVENT_STATE_CHANGED:
                data = event.data
                entity_id: str = data["entity_id"]
                new: State | None = data["new_state"]
                old: State | None = data["old_state"]
                context = event.context
                origin = event.origin
                if new is None:
                    self.buffer.append(self._removed(event, entity_id, old))
                else:
                    # _new_attributes, inlined
                    attributes: Mapping[str, Any] | None = new.attributes
                    seen = self._attributes
                    if seen.get(entity_id) is attributes:
                        attributes = None
                    else:
                        seen[entity_id] = new.attributes
                    self.buffer.append(
                        (
                            _STATE_CHANGED,
                            entity_id,
                            new.last_updated
                            if new.last_updated_timestamp == event.time_fired_timestamp
                            else utc_from_timestamp(event.time_fired_timestamp),
                            "LOCAL" if origin is _LOCAL else origin.value,
                            context.id,
                            context.user_id,
                            context.parent_id,
                            new.state,
                            None if old is None else old.state,
                            new.last_changed,
                            None if old is None else old.last_changed,
                            attributes,
                            None,
                        )
                    )
                if len(self.buffer) == self._full_at:
                    self._on_full()
            else:
                self._append(event)

    @callback
    def _reported_filter(self, data: Mapping[str, Any]) -> bool:
        return self.filter.accept_reported(data)

    @callback
    def _append(self, event: Event[Any]) -> None:
        """Keep an event's values (Captured): a state report, or an event of any type
        but a state change."""
        event_type = event.event_type
        context = event.context
        origin = "LOCAL" if event.origin is _LOCAL else event.origin.value
        captured: Captured
        if event_type == EVENT_STATE_REPORTED:
            data = event.data
            entity_id: str = data["entity_id"]
            new: State = data["new_state"]
            fired = event.time_fired_timestamp
            captured = (
                _STATE_REPORTED,
                entity_id,
                new.last_reported
                if new.last_reported_timestamp == fired
                else utc_from_timestamp(fired),
                origin,
                context.id,
                context.user_id,
                context.parent_id,
                new.state,
                None,
                new.last_changed,
                None,
                self._new_attributes(entity_id, new),
                # The state object carries the report's time on every supported release
                # (the event data too, from 2025.8).
                new.last_reported,
            )
        else:
            captured = (
                event_type,
                None,
                event.time_fired_timestamp,
                origin,
                context.id,
                context.user_id,
                context.parent_id,
                event.data,
            )
        self.buffer.append(captured)
        if len(self.buffer) == self._full_at:
            self._on_full()

    def _new_attributes(self, entity_id: str, new: State) -> Mapping[str, Any] | None:
        """The state's attributes if they are another object than the entity's last
        captured state had (Captured's 11), else None."""
        if self._attributes.get(entity_id) is new.attributes:
            return None
        self._attributes[entity_id] = new.attributes
        return new.attributes

    def _removed(self, event: Event[Any], entity_id: str, old: State | None) -> StateCaptured:
        """The values of a state change that removed its entity (rare)."""
        self._attributes.pop(entity_id, None)
        context = event.context
        return (
            _STATE_CHANGED,
            entity_id,
            utc_from_timestamp(event.time_fired_timestamp),
            "LOCAL" if event.origin is _LOCAL else event.origin.value,
            context.id,
            context.user_id,
            context.parent_id,
            None,
            None if old is None else old.state,
            None,
            None if old is None else old.last_changed,
            None,
            None,
        )

    def take(self) -> list[Captured]:
        """Hand the buffer to the flush and start a new one."""
        taken = self.buffer
        self.buffer = []
        self._taken_total += len(taken)
        return taken

    def _remember_cause(self, event: Event[Any]) -> None:
        causes = self.context_causes
        kind = CAUSE_EVENTS[str(event.event_type)]
        causes[event.context.id] = (kind, event.data.get("name"), event.data.get("entity_id"))
        if len(causes) > CONTEXT_MEMORY:
            # dicts keep insertion order: dropping the first entry forgets the oldest
            del causes[next(iter(causes))]
