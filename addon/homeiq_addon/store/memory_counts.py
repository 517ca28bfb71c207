"""Event counts by (event type, entity, domain): per minute for the last hour
(``LastHourCounts``), since the store last indexed (``UnindexedCounts``), and what the
writer's open transaction added (``EventCounts``, which writes the totals on disk).

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

from ..times import US_PER_MINUTE
from . import time_blocks
from .ids import EVENT_DOMAIN_REF

KEEP_MINUTES: Final = 61  # the longest period served from here is 1h
_MAX_SUBS: Final = 100_000  # distinct keys shared before the table starts again

type Key = tuple[int, int, int, int]  # (minute, event_type_id, entity_ref, domain_ref)
type Sub = tuple[int, int, int]  # (event_type_id, entity_ref, domain_ref)


class LastHourCounts:
    """Thread-safe: the writer adds, request handlers read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minutes: dict[int, Counter[Sub]] = {}
        # One tuple per key for all the minutes: a busy hour holds a key per entity and
        # minute (90,000 at 1,500 entities), 11 MB with a tuple each, 4 MB shared.
        self._subs: dict[Sub, Sub] = {}

    def add(self, keys: Counter[Key]) -> None:
        horizon = int(time.time() // 60) - KEEP_MINUTES
        with self._lock:
            subs = self._subs
            if len(subs) > _MAX_SUBS:  # keys of the past; the minutes keep their own
                subs.clear()
            for (minute, type_id, entity, domain), n in keys.items():
                if minute < horizon:
                    continue
                bucket = self._minutes.get(minute)
                if bucket is None:
                    bucket = self._minutes[minute] = Counter()
                sub = (type_id, entity, domain)
                bucket[subs.setdefault(sub, sub)] += n
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
        first = (int(time.time() // 60) - KEEP_MINUTES) * US_PER_MINUTE
        keys: Counter[Key] = Counter()
        ids, params = time_blocks.in_range(conn, first, None, "id")
        for minute, type_id, entity, domain, n in conn.execute(
            "SELECT time_fired / ?, event_type_id, COALESCE(entity_ref, 0),"
            f" {EVENT_DOMAIN_REF}, COUNT(*) FROM events WHERE {ids} AND time_fired >= ?"
            " GROUP BY 1, 2, 3, 4",
            (US_PER_MINUTE, *params, first),
        ):
            keys[(minute, type_id, entity, domain)] += n
        with self._lock:
            self._minutes.clear()
            self._subs.clear()
        self.add(keys)


type Position = tuple[int, int]  # (watermark, indexes) of store/deferred_index.py


class UnindexedCounts:
    """Counts of the events committed since the store last indexed (store/deferred_index.py).

    The hourly stats add these to the hourly table instead of grouping the unindexed
    tail of raw events (tens of thousands of rows under load). Kept per index
    position, the (watermark, count of indexes) a reader finds in its snapshot; the
    previous one stays for readers whose snapshot predates the last index. When the
    reader's position is not here (after a restart, a rollback or a restore, or when
    retention deleted the newest events and so lowered the watermark) ``since`` answers
    None and the reader counts the tail in SQL. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[Position, Counter[Key]] = {}
        self._current: Position | None = None

    def add(self, keys: Counter[Key]) -> None:
        with self._lock:
            if self._current is not None:
                self._since[self._current].update(keys)

    def indexed(self, position: Position) -> None:
        with self._lock:
            previous = self._current
            self._since = {} if previous is None else {previous: self._since[previous]}
            self._since[position] = Counter()
            self._current = position

    def forget(self) -> None:
        with self._lock:
            self._since.clear()
            self._current = None

    def since(self, position: Position) -> Counter[Key] | None:
        with self._lock:
            found = self._since.get(position)
            return None if found is None else Counter(found)


class EventCounts:
    """The counts of the events the writer inserts, following its transactions.

    A job's counts wait for its savepoint to be released (``job_done``); a transaction's
    are written just before COMMIT (per-minute totals, dirty hours, the row count), then
    added to the in-memory counts. A rollback drops them. The store calls these; the
    writer thread adds (``add``), request handlers read ``recent`` and ``unindexed``.
    """

    def __init__(self) -> None:
        self.last_hour = LastHourCounts()
        self.unindexed = UnindexedCounts()
        self._job: Counter[Key] = Counter()  # the running job's, until its savepoint ends
        self._pending: Counter[Key] = Counter()  # jobs done in the open transaction

    def add(self, keys: Counter[Key]) -> None:
        self._job.update(keys)

    def job_done(self, ok: bool) -> None:
        if ok and self._job:
            self._pending.update(self._job)
        self._job = Counter()

    def before_commit(self, conn: sqlite3.Connection) -> None:
        if self._pending:
            _write_totals(conn, self._pending)

    def after_commit(self) -> None:
        if self._pending:
            self.last_hour.add(self._pending)
            self.unindexed.add(self._pending)
            self._pending = Counter()

    def after_rollback(self) -> None:
        self._job = Counter()
        self._pending = Counter()


def _write_totals(conn: sqlite3.Connection, keys: Counter[Key]) -> None:
    """Per-minute totals, dirty hours and the row count (hourly counts: deferred_index.py)."""
    minutes: Counter[int] = Counter()
    for (minute, _, _, _), n in keys.items():
        minutes[minute] += n
    conn.executemany(
        "INSERT INTO stat_minute VALUES (?, ?)"
        " ON CONFLICT (minute) DO UPDATE SET events = events + excluded.events",
        minutes.items(),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO dirty_hours VALUES (?)", [(h,) for h in {m // 60 for m in minutes}]
    )
    conn.execute(
        "UPDATE counters SET value = value + ? WHERE name = 'events'", (sum(minutes.values()),)
    )
