"""What the HomeIQ entities show: the coordinator's data, as typed values.

Near the bottom of the integration: it imports only the contract, so everything else
may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .contract import Health, MirrorTarget, Stats


@dataclass(frozen=True, slots=True)
class PipelineCounters:
    """A snapshot of the capture pipeline's local counters."""

    captured_total: int = 0
    dropped_total: int = 0
    backlog_events: int = 0
    spool_bytes: int = 0
    spool_cap_bytes: int = 0
    last_delivery: datetime | None = None
    delivery_latency_ms: float | None = None
    events_per_minute: float = 0.0
    connected: bool = False
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class AddonAnswers:
    """The add-on's health and its stats for the last hour, from one refresh."""

    health: Health
    stats: Stats


@dataclass(frozen=True, slots=True)
class IncompatibleAddon:
    """An add-on speaking another API version than this integration: update both."""

    version: str
    api_version: int


@dataclass(frozen=True, slots=True)
class HomeIQState:
    """What one refresh learned: the add-on's answers (when it gave them) and the pipeline's."""

    pipeline: PipelineCounters
    # None while unreachable, before its first answer, and when its answers cannot be read.
    addon: AddonAnswers | None = None
    incompatible: IncompatibleAddon | None = None
    unreachable_since: datetime | None = None

    @property
    def addon_available(self) -> bool:
        """Whether the last refresh reached the add-on."""
        return self.addon is not None

    @property
    def mirror_targets(self) -> dict[str, MirrorTarget]:
        """The add-on's mirror targets by name, from its last answer (none while unreachable)."""
        if self.addon is None:
            return {}
        return {target.name: target for target in self.addon.health.mirror}
