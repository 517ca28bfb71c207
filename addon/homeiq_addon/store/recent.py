"""Per-minute event counts by (event type, entity, domain) for the last hour.

The 15m and 1h stats need counts at minute resolution; writing them to SQLite would cost
about one upsert per event, so they live in memory (added after each commit) and are
rebuilt from the raw events when the service starts. Longer periods use the hourly
table on disk.
"""

from __future__ import annotations

from collections import Counter
import sqlite3
import threading
import time
from typing import Final

KEEP_MINUTES: Final = 61  # the longest period served from here is 1h
_US_PER_MIN: Final = 60_000_000

type Key = tuple[int, int, int, int]  # (minute, event_type_id, entity_ref, domain_ref)
type Sub = tuple[int, int, int]  # (event_type_id, entity_ref, domain_ref)


class RecentCounts:
    """Thread-safe: the writer adds, request handlers read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minutes: dict[int, Counter[Sub]] = {}

    def add(self, keys: Counter[Key]) -> None:
        horizon = int(time.time() // 60) - KEEP_MINUTES
        with self._lock:
            for (minute, type_id, entity, domain), n in keys.items():
                if minute < horizon:
                    continue
                bucket = self._minutes.get(minute)
                if bucket is None:
                    bucket = self._minutes[minute] = Counter()
                bucket[(type_id, entity, domain)] += n
            for minute in [m for m in self._minutes if m < horizon]:
                del self._minutes[minute]

    def window(self, first_minute: int, last_minute: int) -> Counter[Sub]:
        """Counts summed over the minutes in [first, last]."""
        total: Counter[Sub] = Counter()
        with self._lock:
            for minute, bucket in self._minutes.items():
                if first_minute <= minute <= last_minute:
                    total.update(bucket)
        return total

    def load(self, conn: sqlite3.Connection) -> None:
        """Rebuild from the raw events of the last KEEP_MINUTES (at start-up)."""
        first = (int(time.time() // 60) - KEEP_MINUTES) * _US_PER_MIN
        keys: Counter[Key] = Counter()
        for minute, type_id, entity, domain, n in conn.execute(
            "SELECT time_fired / ?, event_type_id, COALESCE(entity_ref, 0),"
            " COALESCE(domain_ref, 0), COUNT(*) FROM events WHERE time_fired >= ?"
            " GROUP BY 1, 2, 3, 4",
            (_US_PER_MIN, first),
        ):
            keys[(minute, type_id, entity, domain)] += n
        with self._lock:
            self._minutes.clear()
        self.add(keys)
