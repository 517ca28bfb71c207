"""What to write again after an outage, because an engine's acknowledgement is not durable.

victoria-metrics 1.79.5 answers 204 before the points are safe on disk: killed with
SIGKILL five seconds after a write was acknowledged (even after /internal/force_flush)
it came back without them; twelve seconds after, they were there (tests/mirror). An
outbox that advanced its cursor on the acknowledgement would then never send them
again. So the acknowledgements of the last ``window_s`` seconds are remembered, and when
a target answers again after it was unavailable, its cursor goes back to the first batch
acknowledged within ``window_s`` before the outage began. Writes are idempotent
(``.points``), so the points the engine did keep are not counted twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import time
from typing import Final

WINDOW_S: Final = 60.0


@dataclass(slots=True)
class ReplayWindow:
    """Recently acknowledged batches of one target: (when, the cursor they started at)."""

    window_s: float = WINDOW_S
    _acks: deque[tuple[float, int]] = field(default_factory=deque)

    def acknowledged(self, first: int, now: float | None = None) -> None:
        """The batch starting at cursor position ``first`` was acknowledged."""
        now = time.monotonic() if now is None else now
        self._acks.append((now, first))
        while self._acks and self._acks[0][0] < now - self.window_s:
            self._acks.popleft()

    def replay_from(self, outage_started: float) -> int | None:
        """The cursor position to write from again after an outage that began at
        ``outage_started`` (time.monotonic()); None when nothing needs writing again."""
        since = outage_started - self.window_s
        firsts = [first for when, first in self._acks if when >= since]
        self._acks.clear()
        return min(firsts) if firsts else None
