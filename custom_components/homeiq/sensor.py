"""HomeIQ sensors: the capture pipeline's counters, the add-on's store, and per mirror
target its lag, status and points.

The mirror targets are the add-on's options, so their sensors come and go with its
answers (as WLED's segment lights do): added when a target first appears, removed from
the entity registry when the add-on answers without it. While the add-on is unreachable
they stay, unavailable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfInformation, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .contract import MirrorTarget
from .coordinator import HomeIQConfigEntry, HomeIQCoordinator
from .entity import HomeIQEntity
from .models import HomeIQState

# The coordinator centralizes the updates.
PARALLEL_UPDATES = 0

UNIT_EVENTS = "events"
UNIT_EVENTS_PER_MINUTE = "events/min"
STATUS_UNREACHABLE = "unreachable"
STATUS_OPTIONS = ["ok", "warning", "error", STATUS_UNREACHABLE]
UNIT_POINTS = "points"
MIRROR_STATUS_OPTIONS = ["ok", "backfilling", "auth_failed", "unreachable", "disabled"]


@dataclass(frozen=True, kw_only=True)
class HomeIQSensorEntityDescription(SensorEntityDescription):
    """A HomeIQ sensor; `local` ones come from the pipeline and outlive the add-on."""

    value_fn: Callable[[HomeIQState], StateType | datetime]
    local: bool = False
    # Stays available while the add-on is down and says so itself (the status).
    always_available: bool = False
    attributes_fn: Callable[[HomeIQState], Mapping[str, Any]] | None = None


def _oldest_event(state: HomeIQState) -> datetime | None:
    """The add-on's timestamps are ISO 8601 text."""
    if state.addon is None or state.addon.stats.store.oldest_event is None:
        return None
    return dt_util.parse_datetime(state.addon.stats.store.oldest_event)


def _status(state: HomeIQState) -> str | None:
    """Worst of the add-on's alerts and its health status; "unreachable" while it is down.

    Before the first answer (right after setup) it is unknown, not unreachable; an add-on
    whose answers cannot be read (another API version) is an error.
    """
    if state.addon is None:
        if state.incompatible is not None:
            return "error"
        return STATUS_UNREACHABLE if state.unreachable_since is not None else None
    levels = {alert.level for alert in state.addon.stats.alerts}
    health = state.addon.health.status
    if "error" in levels or health == "unhealthy":
        return "error"
    if "warning" in levels or health == "degraded":
        return "warning"
    return "ok"


def _alerts(state: HomeIQState) -> dict[str, Any]:
    alerts = state.addon.stats.alerts if state.addon is not None else []
    return {
        "alerts": [
            {"level": alert.level, "metric": alert.metric, "message": alert.message}
            for alert in alerts
        ]
    }


SENSORS: tuple[HomeIQSensorEntityDescription, ...] = (
    HomeIQSensorEntityDescription(
        key="events_per_minute",
        translation_key="events_per_minute",
        native_unit_of_measurement=UNIT_EVENTS_PER_MINUTE,
        state_class=SensorStateClass.MEASUREMENT,
        # Whole events: "116 events/min" fits a tile where "116.0 events/min" did not.
        suggested_display_precision=0,
        local=True,
        value_fn=lambda s: s.pipeline.events_per_minute,
    ),
    HomeIQSensorEntityDescription(
        key="events_captured",
        translation_key="events_captured",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        local=True,
        value_fn=lambda s: s.pipeline.captured_total,
    ),
    HomeIQSensorEntityDescription(
        key="backlog",
        translation_key="backlog",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.MEASUREMENT,
        local=True,
        value_fn=lambda s: s.pipeline.backlog_events,
    ),
    HomeIQSensorEntityDescription(
        key="dropped_events",
        translation_key="dropped_events",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        local=True,
        value_fn=lambda s: s.pipeline.dropped_total,
    ),
    HomeIQSensorEntityDescription(
        key="last_delivery",
        translation_key="last_delivery",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        local=True,
        value_fn=lambda s: s.pipeline.last_delivery,
    ),
    HomeIQSensorEntityDescription(
        key="delivery_latency",
        translation_key="delivery_latency",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Changes with every batch and says little on its own.
        entity_registry_enabled_default=False,
        local=True,
        value_fn=lambda s: s.pipeline.delivery_latency_ms,
    ),
    HomeIQSensorEntityDescription(
        key="events_stored",
        translation_key="events_stored",
        native_unit_of_measurement=UNIT_EVENTS,
        # Retention deletes events, so this is not a total that only grows.
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.addon.stats.store.events_stored if s.addon else None,
    ),
    HomeIQSensorEntityDescription(
        key="database_size",
        translation_key="database_size",
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        suggested_unit_of_measurement=UnitOfInformation.MEGABYTES,
        suggested_display_precision=1,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.addon.stats.store.db_size_bytes if s.addon else None,
    ),
    HomeIQSensorEntityDescription(
        key="oldest_event",
        translation_key="oldest_event",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Moves only when retention runs, once a day.
        entity_registry_enabled_default=False,
        value_fn=_oldest_event,
    ),
    HomeIQSensorEntityDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        options=STATUS_OPTIONS,
        always_available=True,
        value_fn=_status,
        attributes_fn=_alerts,
    ),
)


@dataclass(frozen=True, kw_only=True)
class MirrorSensorEntityDescription(SensorEntityDescription):
    """A figure of one mirror target; ``key`` ends its unique id (after the target's name)."""

    value_fn: Callable[[MirrorTarget], StateType]
    attributes_fn: Callable[[MirrorTarget], Mapping[str, Any]] | None = None


# Per target: the lag an owner watches (how far behind it is), and beside it what
# explains a lag: the status with the last error, and the points written and refused.
MIRROR_SENSORS: tuple[MirrorSensorEntityDescription, ...] = (
    MirrorSensorEntityDescription(
        key="lag",
        translation_key="mirror_lag",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda t: t.lag_seconds,
        attributes_fn=lambda t: {"lag_events": t.lag_events},
    ),
    MirrorSensorEntityDescription(
        key="status",
        translation_key="mirror_status",
        device_class=SensorDeviceClass.ENUM,
        options=MIRROR_STATUS_OPTIONS,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda t: t.status,
        attributes_fn=lambda t: {"last_error": t.last_error, "last_success": t.last_success},
    ),
    MirrorSensorEntityDescription(
        key="points_written",
        translation_key="mirror_points_written",
        native_unit_of_measurement=UNIT_POINTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda t: t.points_written,
    ),
    MirrorSensorEntityDescription(
        key="points_refused",
        translation_key="mirror_points_refused",
        native_unit_of_measurement=UNIT_POINTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda t: t.points_refused,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeIQConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the HomeIQ sensors."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(HomeIQSensor(coordinator, description) for description in SENSORS)
    update = _mirror_sensors_follow_targets(entry, coordinator, async_add_entities)
    update()
    entry.async_on_unload(coordinator.async_add_listener(update))


def _mirror_sensors_follow_targets(
    entry: HomeIQConfigEntry,
    coordinator: HomeIQCoordinator,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> Callable[[], None]:
    """A coordinator listener adding the sensors of new targets and removing those of
    targets the add-on no longer has (left by this run or an earlier one)."""
    registry = er.async_get(coordinator.hass)
    added: set[str] = set()

    @callback
    def update() -> None:
        if not coordinator.data.addon_available:
            return
        targets = coordinator.data.mirror_targets
        new = [name for name in targets if name not in added]
        added.intersection_update(targets)
        if new:
            added.update(new)
            async_add_entities(
                MirrorTargetSensor(coordinator, description, name)
                for name in new
                for description in MIRROR_SENSORS
            )
        expected = {
            mirror_unique_id(entry, name, description.key)
            for name in targets
            for description in MIRROR_SENSORS
        }
        prefix = mirror_unique_id(entry, "", "")
        for registered in er.async_entries_for_config_entry(registry, entry.entry_id):
            unique_id = registered.unique_id
            if unique_id.startswith(prefix) and unique_id not in expected:
                registry.async_remove(registered.entity_id)

    return update


def mirror_unique_id(entry: HomeIQConfigEntry, target: str, key: str) -> str:
    """Unique per target and figure; with both empty, the prefix all of them share."""
    base = f"{entry.unique_id or entry.entry_id}_mirror"
    return f"{base}_{target}_{key}" if target else f"{base}_"


class HomeIQSensor(HomeIQEntity, SensorEntity):
    """A HomeIQ sensor."""

    entity_description: HomeIQSensorEntityDescription
    # The alert list is for the dashboard, not for the recorder.
    _unrecorded_attributes = frozenset({"alerts"})

    @property
    def available(self) -> bool:
        """Add-on figures need the add-on; pipeline counters and the status do not."""
        description = self.entity_description
        return super().available and (
            description.local
            or description.always_available
            or self.coordinator.data.addon_available
        )

    @property
    def native_value(self) -> StateType | datetime:
        """Return the sensor's value from the latest refresh."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the active alerts for the status sensor."""
        if self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(self.coordinator.data)


class MirrorTargetSensor(HomeIQEntity, SensorEntity):
    """One figure of one mirror target, named after the target."""

    entity_description: MirrorSensorEntityDescription
    # The last error and success change with every failure and write.
    _unrecorded_attributes = frozenset({"last_error", "last_success"})

    def __init__(
        self,
        coordinator: HomeIQCoordinator,
        description: MirrorSensorEntityDescription,
        target: str,
    ) -> None:
        """Attach the figure to the HomeIQ device, named after its target."""
        super().__init__(coordinator, description)
        self.target = target
        self._attr_unique_id = mirror_unique_id(coordinator.config_entry, target, description.key)
        self._attr_translation_placeholders = {"target": target}

    @property
    def _mirror_target(self) -> MirrorTarget | None:
        return self.coordinator.data.mirror_targets.get(self.target)

    @property
    def available(self) -> bool:
        """Available while the add-on answers and still has the target."""
        return super().available and self._mirror_target is not None

    @property
    def native_value(self) -> StateType:
        """Return the target's figure from the latest refresh."""
        target = self._mirror_target
        return None if target is None else self.entity_description.value_fn(target)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return what explains the figure (events behind, the last error)."""
        target = self._mirror_target
        if target is None or self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(target)
