"""The one contract between the HomeIQ integration and the HomeIQ add-on.

Every payload that crosses between them is defined here once, as msgspec structs: the
batch the integration sends and the acknowledgement it gets, the health and stats
answers its sensors read, the error every refusal carries, and the discovery message
the add-on hands Home Assistant through the Supervisor. The add-on decodes and validates
with these types, and its OpenAPI document is generated from them.

This file exists twice, byte for byte: ``addon/homeiq_addon/contract.py`` and
``custom_components/homeiq/contract.py``. Each side is installed on its own (HACS
installs the integration's folder alone; the add-on image is built from ``addon/``
alone), so neither can import the other; tests/addon/test_packaging.py fails when the
copies differ. It imports nothing but msgspec and the standard library.

A field's ``description`` is also the message a client gets when that field is wrong
("events[3].state: expected string of at most 255 characters"). Rules a type cannot
express are written out beside the types: ``parse_time_us`` (times with an offset, in
the accepted range), ``STATE_EVENT_TYPES`` (a state event names its entity) and
``MAX_NESTING`` (how deep ``data`` and ``attributes`` may nest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from msgspec import Meta, Struct

# The integration refuses an add-on whose API version differs from its own.
API_VERSION: Final = 1

# --- limits and rules ---------------------------------------------------------------------

MAX_EVENTS: Final = 5000
MAX_STR: Final = 255
MAX_LABELS: Final = 100
MAX_PEOPLE: Final = 1_000_000
# JSON integers are taken within ±2**53, where every reader of JSON agrees on the value.
MAX_INT: Final = 2**53
# How deep `data` and `attributes` may nest (objects and arrays, the value itself being
# level 1): orjson's limit, which writes them into the add-on's store.
MAX_NESTING: Final = 254
STATE_EVENT_TYPES: Final = frozenset({"state_changed", "state_reported"})
EVENTS_EXPECTED: Final = f"expected 1 to {MAX_EVENTS} events, as events or as columns"
ORIGINS: Final = ("LOCAL", "REMOTE")
CAUSES: Final = ("user", "automation", "script", "device", "integration", "system")
BATCH_ID_PATTERN: Final = "^[A-Za-z0-9_-]{1,64}$"
ENTITY_ID_PATTERN: Final = "^[a-z0-9_]+\\.[a-z0-9_]+$"

# Every time taken (time_fired, last_changed, last_reported, and every time a client
# asks with) fits, and every reader can turn it back into a date, which year 1 or 9999
# with an offset cannot (datetime ends at 9999-12-31).
TIME_MIN: Final = datetime(1970, 1, 1, tzinfo=UTC)
TIME_END: Final = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
TIME_EXPECTED: Final = (
    "expected ISO 8601 datetime with UTC offset, from 1970-01-01 to before 2200-01-01 (UTC)"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_MIN_US: Final = (TIME_MIN - _EPOCH) // _ONE_US
_END_US: Final = (TIME_END - _EPOCH) // _ONE_US


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


# --- field types --------------------------------------------------------------------------
# Lengths count code points, as Python's len() does.

type Text = Annotated[
    str, Meta(max_length=MAX_STR, description=f"expected string of at most {MAX_STR} characters")
]
type Id64 = Annotated[
    str, Meta(min_length=1, max_length=64, description="expected string of 1 to 64 characters")
]
# Only a length in the type; parse_time_us holds the rule.
type Time = Annotated[str, Meta(max_length=64, description=TIME_EXPECTED)]
# Floats decoded from JSON are always finite (NaN and Infinity are no JSON).
type Number = Annotated[
    Annotated[int, Meta(ge=-MAX_INT, le=MAX_INT)] | float,
    Meta(description="expected finite number"),
]
type JsonObject = Annotated[
    dict[str, Any],
    Meta(description=f"expected object nested at most {MAX_NESTING} levels deep"),
]
type EntityId = Annotated[
    str,
    Meta(
        max_length=MAX_STR,
        pattern=ENTITY_ID_PATTERN,
        description="expected entity id like domain.object_id",
    ),
]
type Origin = Annotated[Literal["LOCAL", "REMOTE"], Meta(description="expected LOCAL or REMOTE")]
type Cause = Annotated[
    Literal["user", "automation", "script", "device", "integration", "system"],
    Meta(description="expected one of " + ", ".join(CAUSES)),
]
type Labels = Annotated[
    list[Annotated[str, Meta(max_length=MAX_STR)]],
    Meta(max_length=MAX_LABELS, description=f"expected list of at most {MAX_LABELS} strings"),
]
type PeopleHome = Annotated[
    int, Meta(ge=0, le=MAX_PEOPLE, description=f"expected integer from 0 to {MAX_PEOPLE}")
]
type BatchId = Annotated[
    str,
    Meta(pattern=BATCH_ID_PATTERN, description="expected 1 to 64 characters from A-Z a-z 0-9 _ -"),
]
type EntityIndex = Annotated[
    int, Meta(ge=0, lt=MAX_EVENTS, description="expected index into the batch's entities")
]
type Version = Annotated[
    str, Meta(min_length=1, max_length=32, description="expected string of 1 to 32 characters")
]

# Columns of EventColumns: one value per event of the block (null where it has none).
_ONE_PER_EVENT: Final = f"(one per event, at most {MAX_EVENTS})"
type TimeColumn = Annotated[
    list[Time], Meta(max_length=MAX_EVENTS, description=f"{TIME_EXPECTED} {_ONE_PER_EVENT}")
]
type TimeOrNullColumn = Annotated[
    list[Time | None],
    Meta(max_length=MAX_EVENTS, description=f"{TIME_EXPECTED}, or null {_ONE_PER_EVENT}"),
]
type IdColumn = Annotated[
    list[Id64],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected string of 1 to 64 characters {_ONE_PER_EVENT}",
    ),
]
type IdOrNullColumn = Annotated[
    list[Id64 | None],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected string of 1 to 64 characters, or null {_ONE_PER_EVENT}",
    ),
]
type OriginColumn = Annotated[
    list[Origin],
    Meta(max_length=MAX_EVENTS, description=f"expected LOCAL or REMOTE {_ONE_PER_EVENT}"),
]
type TextColumn = Annotated[
    list[Text | None],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected string of at most {MAX_STR} characters, or null {_ONE_PER_EVENT}",
    ),
]
type NumberColumn = Annotated[
    list[Number | None],
    Meta(max_length=MAX_EVENTS, description=f"expected finite number, or null {_ONE_PER_EVENT}"),
]
type JsonObjectColumn = Annotated[
    list[JsonObject | None],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected object nested at most {MAX_NESTING} levels deep, or null "
        + _ONE_PER_EVENT,
    ),
]
type EntityColumn = Annotated[
    list[EntityIndex | None],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected index into the batch's entities, or null {_ONE_PER_EVENT}",
    ),
]
type CauseColumn = Annotated[
    list[Cause | None],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected one of {', '.join(CAUSES)}, or null {_ONE_PER_EVENT}",
    ),
]
type PeopleHomeColumn = Annotated[
    list[PeopleHome | None],
    Meta(
        max_length=MAX_EVENTS,
        description=f"expected integer from 0 to {MAX_PEOPLE}, or null {_ONE_PER_EVENT}",
    ),
]

# --- what the integration sends: POST /api/v1/ingest --------------------------------------


class Event(Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One Home Assistant event with what the integration knows about it.

    Absent and null are the same. A state event (``STATE_EVENT_TYPES``) names its entity:
    with ``entity_id`` and the entity's fields, or with ``entity``, the index of an
    ``EntityFacts`` in its batch's ``entities``, whose fields it then has (an event that
    refers to an entity carries none of ``ENTITY_FIELDS`` itself; its own cause, if it
    names one, replaces the entity's).
    """

    # What Home Assistant fired.
    time_fired: Time
    event_type: Id64
    origin: Origin
    context_id: Id64
    context_user_id: Id64 | None = None
    context_parent_id: Id64 | None = None
    data: JsonObject | None = None
    # The entity and its state (state events).
    entity_id: EntityId | None = None
    domain: Text | None = None
    state: Text | None = None
    old_state: Text | None = None
    numeric_value: Number | None = None
    last_changed: Time | None = None
    last_reported: Time | None = None
    prev_state_seconds: Number | None = None
    attributes: JsonObject | None = None
    # From the registries.
    area_id: Text | None = None
    area: Text | None = None
    floor: Text | None = None
    device_id: Text | None = None
    device_name: Text | None = None
    device_manufacturer: Text | None = None
    device_model: Text | None = None
    labels: Labels | None = None
    device_class: Text | None = None
    state_class: Text | None = None
    unit: Text | None = None
    friendly_name: Text | None = None
    # Who or what caused it.
    cause: Cause | None = None
    cause_name: Text | None = None
    cause_id: Text | None = None
    # The home at that moment (optional snapshots).
    outdoor_temperature: Number | None = None
    weather_condition: Text | None = None
    sun_elevation: Number | None = None
    people_home: PeopleHome | None = None
    # Or the entity and its facts by reference (see above).
    entity: EntityIndex | None = None


class EntityFacts(Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One entity as the events that refer to it (``Event.entity``) have it: what its
    state's attributes and the registries say, and the cause of its events that name
    none. Sent once per batch rather than with every event, it is most of an event's
    bytes."""

    entity_id: EntityId
    domain: Text | None = None
    attributes: JsonObject | None = None
    area_id: Text | None = None
    area: Text | None = None
    floor: Text | None = None
    device_id: Text | None = None
    device_name: Text | None = None
    device_manufacturer: Text | None = None
    device_model: Text | None = None
    labels: Labels | None = None
    device_class: Text | None = None
    state_class: Text | None = None
    unit: Text | None = None
    friendly_name: Text | None = None
    cause: Cause | None = None
    cause_name: Text | None = None
    cause_id: Text | None = None


# The fields an event referring to an entity takes from it and may not carry itself.
ENTITY_FIELDS: Final = tuple(
    name for name in EntityFacts.__struct_fields__ if not name.startswith("cause")
)


class EventColumns(Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """A block of events as columns, in order: each column a list with one value per
    event of the block, ``Event``'s field of the same name. A column left out is null for
    every event; every column given has as many values as ``time_fired``. An event names
    its entity with ``entity`` only, an index into the batch's ``entities`` (no
    ``ENTITY_FIELDS`` column). The same events take about 40 % fewer bytes than as
    ``events`` referring to their entities, and the add-on reads them without building
    an object per event."""

    time_fired: TimeColumn
    event_type: IdColumn
    origin: OriginColumn
    context_id: IdColumn
    context_user_id: IdOrNullColumn | None = None
    context_parent_id: IdOrNullColumn | None = None
    data: JsonObjectColumn | None = None
    entity: EntityColumn | None = None
    state: TextColumn | None = None
    old_state: TextColumn | None = None
    numeric_value: NumberColumn | None = None
    last_changed: TimeOrNullColumn | None = None
    last_reported: TimeOrNullColumn | None = None
    prev_state_seconds: NumberColumn | None = None
    cause: CauseColumn | None = None
    cause_name: TextColumn | None = None
    cause_id: TextColumn | None = None
    outdoor_temperature: NumberColumn | None = None
    weather_condition: TextColumn | None = None
    sun_elevation: NumberColumn | None = None
    people_home: PeopleHomeColumn | None = None


class Source(Struct, forbid_unknown_fields=True, gc=False):
    """Which Home Assistant, and which integration version, sent a batch."""

    instance_id: Id64
    integration_version: Version


class Batch(Struct, forbid_unknown_fields=True):
    """Events shipped together; the add-on stores all of them or none. They come one way:
    as ``events`` or as ``columns``, 1 to MAX_EVENTS of them."""

    # Stable across retries: a batch sent again is acknowledged again, stored once.
    batch_id: BatchId
    source: Source
    events: Annotated[
        list[Event],
        Meta(max_length=MAX_EVENTS, description=EVENTS_EXPECTED),
    ] = []
    # The entities its events refer to (Event.entity). An add-on that reads them says so
    # in its health answer (FEATURE_BATCH_ENTITIES in Health.features).
    entities: Annotated[
        list[EntityFacts],
        Meta(max_length=MAX_EVENTS, description=f"expected at most {MAX_EVENTS} entities"),
    ] = []
    # Or the events as blocks of columns, in order (FEATURE_BATCH_COLUMNS).
    columns: Annotated[
        list[EventColumns],
        Meta(max_length=MAX_EVENTS, description=EVENTS_EXPECTED),
    ] = []


class Ack(Struct):
    """The add-on's answer to a batch: committed to disk, now or before (duplicate)."""

    batch_id: str
    accepted: int
    duplicate: bool


# --- what the add-on answers ---------------------------------------------------------------


class Error(Struct):
    """Every refusal (4xx) and failure (5xx): a stable code and a message for people."""

    error: str
    message: str


type HealthStatus = Literal["healthy", "degraded", "unhealthy"]
# ok: sending live events; backfilling: sending stored history; auth_failed: the target
# refuses the token (or org/bucket); unreachable: the target does not answer, or is
# overloaded; disabled: configured but switched off (retention does not wait for it).
type MirrorStatus = Literal["ok", "backfilling", "auth_failed", "unreachable", "disabled"]


class MirrorTarget(Struct):
    """One InfluxDB-compatible target the add-on mirrors stored events to."""

    name: str
    status: MirrorStatus
    # Stored events not yet received by the target, and the age of the oldest of them.
    lag_events: int
    lag_seconds: float | None
    points_written: int
    # Points the target refused for their content: set aside, counted, never retried.
    points_refused: int
    last_error: str | None
    last_success: str | None
    # Retention keeps raw events the target has not received, unless the target is
    # disabled or its lag passed the configured bound (then this is false and Home
    # Assistant raises a repair issue).
    retention_waits: bool


class HealthMinimal(Struct):
    """GET /api/v1/health?minimal=1: open without a token, for probes."""

    status: HealthStatus


class Health(Struct):
    """GET /api/v1/health. Unhealthy (HTTP 503) when the store cannot be read; degraded
    while an alert fires (see Stats.alerts)."""

    status: HealthStatus
    version: str
    api_version: int
    schema_version: int
    instance_id: str
    uptime_seconds: float
    # The database file and its write-ahead log.
    db_size_bytes: int
    events_stored: int | None
    last_ingest: str | None
    # Absent from add-ons before the mirror: an integration reads them as none.
    mirror: list[MirrorTarget] = []
    # What this add-on reads beyond API version 1's first form (absent before: none).
    features: list[str] = []


# Health.features: batches may send each entity once (Batch.entities, Event.entity).
FEATURE_BATCH_ENTITIES: Final = "batch_entities"
# Health.features: batches may send their events as columns (Batch.columns).
FEATURE_BATCH_COLUMNS: Final = "batch_columns"

type StatsPeriod = Literal["15m", "1h", "24h", "7d"]
STATS_PERIODS: Final = ("15m", "1h", "24h", "7d")


class Percentiles(Struct):
    p50: float | None
    p95: float | None


class EntityCount(Struct):
    entity_id: str
    count: int


class Metrics(Struct):
    """What happened in the period: events, and how ingest went."""

    events: int
    events_per_minute: float
    by_domain: dict[str, int]
    by_event_type: dict[str, int]
    top_entities: list[EntityCount]
    batches_accepted: int
    batches_rejected: int
    error_rate: float  # percent of batches rejected
    success_rate: float
    ingest_latency_ms: Percentiles


class TrendPoint(Struct):
    start: str
    events: int


class Alert(Struct):
    level: Literal["warning", "error"]
    metric: Literal["error_rate", "success_rate", "processing"]
    message: str
    value: float
    threshold: float


class StoreSummary(Struct):
    events_stored: int
    oldest_event: str | None
    newest_event: str | None
    # The same figure as Health.db_size_bytes.
    db_size_bytes: int


class Stats(Struct):
    """GET /api/v1/stats?period=: counts, trend, alerts and the store, for one period."""

    period: StatsPeriod
    generated_at: str
    metrics: Metrics
    trends: list[TrendPoint]
    alerts: list[Alert]
    store: StoreSummary
    mirror: list[MirrorTarget] = []


# --- how Home Assistant learns about the add-on --------------------------------------------

DISCOVERY_SERVICE: Final = "homeiq"


class DiscoveryConfig(Struct):
    """Where the add-on listens, and the token its API takes."""

    host: str
    port: Annotated[int, Meta(ge=1, le=65535)]
    token: str


class Discovery(Struct):
    """What the add-on posts to the Supervisor's /discovery; Home Assistant hands
    ``config`` to the integration's config flow (``async_step_hassio``)."""

    service: Literal["homeiq"]
    config: DiscoveryConfig
