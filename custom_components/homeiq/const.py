"""Constants for the HomeIQ integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "homeiq"
LOGGER = logging.getLogger(__package__)

INTEGRATION_VERSION: Final = "0.1.0"

CONF_URL: Final = "url"
CONF_TOKEN: Final = "token"  # noqa: S105 - the option key, not a secret

CONF_CAPTURE_MODE: Final = "capture_mode"
CONF_EVENT_TYPES: Final = "event_types"
CONF_INCLUDE_STATE_REPORTED: Final = "include_state_reported"
CONF_INCLUDE_ENTITIES: Final = "include_entities"
CONF_EXCLUDE_ENTITIES: Final = "exclude_entities"
CONF_INCLUDE_DOMAINS: Final = "include_domains"
CONF_EXCLUDE_DOMAINS: Final = "exclude_domains"
CONF_INCLUDE_AREAS: Final = "include_areas"
CONF_EXCLUDE_AREAS: Final = "exclude_areas"
CONF_INCLUDE_LABELS: Final = "include_labels"
CONF_EXCLUDE_LABELS: Final = "exclude_labels"
CONF_KEEP_ATTRIBUTES: Final = "keep_attributes"
CONF_DROP_ATTRIBUTES: Final = "drop_attributes"
CONF_WEATHER_ENTITY: Final = "weather_entity"
CONF_ENRICH_SUN: Final = "enrich_sun"
CONF_ENRICH_PEOPLE: Final = "enrich_people"
CONF_BATCH_SIZE: Final = "batch_size"
CONF_FLUSH_INTERVAL: Final = "flush_interval"
CONF_SPOOL_CAP_MB: Final = "spool_cap_mb"

CAPTURE_ALL: Final = "all"
CAPTURE_STATE_CHANGES: Final = "state_changes"
CAPTURE_EVENT_TYPES: Final = "event_types"
CAPTURE_MODES: Final = [CAPTURE_ALL, CAPTURE_STATE_CHANGES, CAPTURE_EVENT_TYPES]

DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_FLUSH_INTERVAL: Final = 5
DEFAULT_SPOOL_CAP_MB: Final = 500
MIN_BATCH_SIZE: Final = 100
MAX_BATCH_SIZE: Final = 5000
MIN_FLUSH_INTERVAL: Final = 1
MAX_FLUSH_INTERVAL: Final = 60
MIN_SPOOL_CAP_MB: Final = 1
MAX_SPOOL_CAP_MB: Final = 10000

LIST_OPTIONS: Final = (
    CONF_EVENT_TYPES,
    CONF_INCLUDE_ENTITIES,
    CONF_EXCLUDE_ENTITIES,
    CONF_INCLUDE_DOMAINS,
    CONF_EXCLUDE_DOMAINS,
    CONF_INCLUDE_AREAS,
    CONF_EXCLUDE_AREAS,
    CONF_INCLUDE_LABELS,
    CONF_EXCLUDE_LABELS,
    CONF_KEEP_ATTRIBUTES,
    CONF_DROP_ATTRIBUTES,
)

DEFAULT_OPTIONS: Final[dict[str, object]] = {
    CONF_CAPTURE_MODE: CAPTURE_ALL,
    CONF_INCLUDE_STATE_REPORTED: False,
    **{key: [] for key in LIST_OPTIONS},
    CONF_WEATHER_ENTITY: None,
    CONF_ENRICH_SUN: False,
    CONF_ENRICH_PEOPLE: False,
    CONF_BATCH_SIZE: DEFAULT_BATCH_SIZE,
    CONF_FLUSH_INTERVAL: DEFAULT_FLUSH_INTERVAL,
    CONF_SPOOL_CAP_MB: DEFAULT_SPOOL_CAP_MB,
}

# Repair issue raised by the pipeline when the spool cap forced dropping events.
ISSUE_SPOOL_FULL: Final = "spool_full"

# HA stop/unload: how long the in-memory buffer may take to reach the spool.
SHUTDOWN_FLUSH_TIMEOUT: Final = 10.0
# Shipper back-off bounds (seconds).
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 60.0
# While backing off from an unreachable add-on: how often its minimal health is asked.
PROBE_INTERVAL: Final = 1.0
# Batches on the wire at once: the add-on decodes one while it stores the other, and the
# round trip of one (HA's loop, busy under load, takes its turns late) hides behind the
# other. Each is stored exactly once whatever order they end in (the add-on knows a
# batch id it committed), and one that fails stays in the spool, in its place.
IN_FLIGHT: Final = 2
