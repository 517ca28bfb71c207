"""What to write again after an outage, because an engine's acknowledgement is not durable.

victoria-metrics 1.79.5 answers 204 before the points are safe on disk: killed with
SIGKILL five seconds after a write was acknowledged (even after /internal/force_flush)
it came back without them; twelve seconds after, they were there (tests/mirror). An
outbox that advanced its cursor on the acknowledgement would then never send them
again. So the acknowledgements of the last ``window_s`` seconds are remembered, and when
a target answers again after it was unavailable, its cursor goes back to the first batch
acknowledged within ``window_s`` before the outage began. Writes are idempotent
(``.points``), so the points the engine did keep are not counted twice.

A position is whatever a cursor is: an event id, or the rollups' (change id, scan). A
cursor only moves forward between two replays, so the first position acknowledged in
the window is also the furthest back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import time
from typing import Final

WINDOW_S: Final = 60.0


@dataclass(slots=True)
class ReplayWindow[P]:
    """Recently acknowledged batches of one cursor: (when, the position they started at)."""

    window_s: float = WINDOW_S
    _acks: deque[tuple[float, P]] = field(default_factory=deque)

    def acknowledged(self, first: P, now: float | None = None) -> None:
        """The batch starting at position ``first`` was acknowledged."""
        now = time.monotonic() if now is None else now
        self._acks.append((now, first))
        self._forget_before(now - self.window_s)

    def replay_from(self, outage_started: float) -> P | None:
        """The position to write from again after an outage that began at
        ``outage_started`` (time.monotonic()); None when nothing needs writing again."""
        self._forget_before(outage_started - self.window_s)
        first = self._acks[0][1] if self._acks else None
        self._acks.clear()
        return first

    def oldest(self, now: float | None = None) -> P | None:
        """The furthest back a replay could go from now: what it needs must be kept."""
        now = time.monotonic() if now is None else now
        self._forget_before(now - self.window_s)
        return self._acks[0][1] if self._acks else None

    def clear(self) -> None:
        self._acks.clear()

    def _forget_before(self, since: float) -> None:
        while self._acks and self._acks[0][0] < since:
            self._acks.popleft()
