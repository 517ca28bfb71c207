"""What the HomeIQ entities show: the coordinator's data, as typed values.

The bottom of the integration: it imports nothing of it, so everything else may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
class HomeIQState:
    """What one refresh learned: the add-on's view (when reachable) and the pipeline's."""

    addon_available: bool
    pipeline: PipelineCounters
    health: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    unreachable_since: datetime | None = None

    @property
    def store(self) -> dict[str, Any]:
        """The add-on's store figures (stats first, health as fallback)."""
        store: dict[str, Any] = dict(self.health)
        store.update(self.stats.get("store") or {})
        return store
