"""The hourly counts (``stat_hour_key``) summed over whole past hours, kept between reads.

The 24h and 7d stats add up the hourly counts by (event type, entity, domain) of 25 or
169 clock hours: a row per active entity and hour, 36,000 for a day of 1,500 entities,
which cost more than everything else in the answer together (23 ms of 10M events'
store, 3 of its first million, which filled 3 hours). Past hours seldom change, so a
reader keeps what it summed (by event type, by entity, by domain) and the next one
reuses it when nothing wrote those hours since, moving the window by the hours that
left and entered it, and reading the current hour again when it took more events.

How the kept sums stay exact, for the snapshot each reader sees:
- Only the writer's index runs (deferred_index.py) write the hourly counts, and each run
  bumps ``counters['settles']``, its number, in the same transaction. The writer notes
  the lowest hour each run wrote (``indexed``). Sums made at run r for hours up to h
  still hold at run r' when no run in (r, r'] wrote an hour ≤ h. Late events (a spool
  sent after an outage) make such runs, as does the first run after each clock hour:
  then the window is summed again.
- A restore swaps the whole database: the generation is odd while it does
  (``replacing``) and moves on after (``replaced``). A reader trusts kept sums only when
  it read the same even generation before its snapshot began and after it summed.
- maintenance.py deletes hours older than its KEEP_SECONDS: kept sums move by at most
  MAX_SHIFT_HOURS, so an hour leaving the window was never pruned under them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import sqlite3
import threading
from typing import Final

from .deferred_index import position

# Index runs remembered (one every 5 s under steady load: about 14 hours).
KEEP_RUNS: Final = 10_000
# 7 days of window + 1 hour, shifted by this much, stay younger than the 8 days the
# bookkeeping tables keep (maintenance.KEEP_SECONDS).
MAX_SHIFT_HOURS: Final = 12
UNKNOWN: Final = float("-inf")  # a run that may have written any hour
NONE: Final = float("inf")  # a run that wrote no hourly count

_ONE_HOUR: Final = (
    "SELECT event_type_id, entity_ref, domain_ref, n FROM stat_hour_key WHERE hour = ?"
)
_HOURS: Final = (
    "SELECT event_type_id, entity_ref, domain_ref, SUM(n) FROM stat_hour_key"
    " WHERE hour >= ? AND hour <= ? GROUP BY 1, 2, 3"
)


type Rows = list[tuple[int, int, int, int]]  # (event type id, entity ref, domain ref, n)


@dataclass(slots=True)
class Sums:
    """Counts by event type id, entity ref and domain ref (0, no entity/domain, left out)."""

    by_type: Counter[int]
    by_entity: Counter[int]
    by_domain: Counter[int]

    @classmethod
    def empty(cls) -> Sums:
        return cls(Counter(), Counter(), Counter())

    def copy(self) -> Sums:
        return Sums(Counter(self.by_type), Counter(self.by_entity), Counter(self.by_domain))

    def add(self, rows: Rows) -> None:
        """Add (type, entity, domain, n) rows."""
        by_type, by_entity, by_domain = self.by_type, self.by_entity, self.by_domain
        for type_id, entity_ref, domain_ref, n in rows:
            by_type[type_id] += n
            if entity_ref:
                by_entity[entity_ref] += n
            if domain_ref:
                by_domain[domain_ref] += n

    def take(self, rows: Rows) -> None:
        """Take away (type, entity, domain, n) rows: the hours that left the window."""
        if not rows:
            return
        by_type, by_entity, by_domain = self.by_type, self.by_entity, self.by_domain
        for type_id, entity_ref, domain_ref, n in rows:
            by_type[type_id] -= n
            if entity_ref:
                by_entity[entity_ref] -= n
            if domain_ref:
                by_domain[domain_ref] -= n
        # No zero entries: a key whose hours all left is gone, as from a fresh sum.
        for counter in (by_type, by_entity, by_domain):
            for key in [key for key, n in counter.items() if not n]:
                del counter[key]


def hour_rows(conn: sqlite3.Connection, first_hour: int, last_hour: int) -> Rows:
    """(event type id, entity ref, domain ref, n) of the hourly counts in [first, last]."""
    if last_hour < first_hour:
        return []
    if last_hour == first_hour:  # one row per key already
        return conn.execute(_ONE_HOUR, (first_hour,)).fetchall()
    return conn.execute(_HOURS, (first_hour, last_hour)).fetchall()


@dataclass(slots=True, frozen=True)
class _Kept:
    generation: int
    run: int  # the index run the hours were read at
    first_hour: int
    last_hour: int
    sums: Sums  # over [first_hour, last_hour]
    newest: Rows  # the rows of last_hour alone (the current hour: it changes most)


class HourSums:
    """Thread-safe: the writer notes runs and restores, readers sum and keep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._lowest: dict[int, float] = {}  # index run -> the lowest hour it wrote
        self._kept: dict[str, _Kept] = {}  # by the caller's name for the window

    # --- the writer's side ---------------------------------------------------------------

    def indexed(self, run: int, lowest_hour: float) -> None:
        """Index run ``run`` committed, writing no hour below ``lowest_hour``."""
        with self._lock:
            self._lowest[run] = lowest_hour
            while len(self._lowest) > KEEP_RUNS:
                del self._lowest[next(iter(self._lowest))]

    def replacing(self) -> None:
        """The database is about to be swapped for another (a restore)."""
        with self._lock:
            self._generation |= 1
            self._forget()

    def replaced(self) -> None:
        """The swap is over (done or not)."""
        with self._lock:
            self._generation = (self._generation | 1) + 1
            self._forget()

    def _forget(self) -> None:
        self._lowest.clear()
        self._kept.clear()

    # --- the readers' side ---------------------------------------------------------------

    def generation(self) -> int:
        """Read before the reader's snapshot begins (its first query); pass to ``sums``."""
        with self._lock:
            return self._generation

    def sums(
        self, conn: sqlite3.Connection, first_hour: int, last_hour: int, generation: int, name: str
    ) -> Sums:
        """The hourly counts summed over [first_hour, last_hour] as this snapshot holds
        them, from the sums kept under ``name`` when they still hold; a copy."""
        run = position(conn)[1]
        with self._lock:
            kept = self._kept.get(name)
            lowest = NONE if kept is None else self._lowest_written(kept, generation, run)
        if kept is None or lowest < kept.last_hour or not _follows(kept, first_hour, last_hour):
            summed, newest = _summed(conn, first_hour, last_hour)
        else:
            summed, newest = kept.sums.copy(), kept.newest
            if lowest == kept.last_hour:  # the current hour took more events
                summed.take(newest)
                newest = hour_rows(conn, kept.last_hour, kept.last_hour)
                summed.add(newest)
            summed.take(hour_rows(conn, kept.first_hour, first_hour - 1))
            if last_hour > kept.last_hour:
                summed.add(hour_rows(conn, max(kept.last_hour + 1, first_hour), last_hour - 1))
                newest = hour_rows(conn, last_hour, last_hour)
                summed.add(newest)
        with self._lock:
            unchanged = generation % 2 == 0 and generation == self._generation
            if unchanged:
                # The snapshot began after ``generation`` was read and nothing was
                # swapped since: the sums are this generation's.
                self._kept[name] = _Kept(generation, run, first_hour, last_hour, summed, newest)
        if not unchanged and kept is not None:
            summed, _ = _summed(conn, first_hour, last_hour)  # the snapshot's own rows
        return summed.copy() if unchanged else summed

    def _lowest_written(self, kept: _Kept, generation: int, run: int) -> float:
        """The lowest hour the index runs since ``kept`` wrote (UNKNOWN: unusable)."""
        if kept.generation != generation or generation % 2:
            return UNKNOWN
        if not kept.run <= run <= kept.run + KEEP_RUNS:
            return UNKNOWN
        lowest = NONE
        for later in range(kept.run + 1, run + 1):
            lowest = min(lowest, self._lowest.get(later, UNKNOWN))
        return lowest


def _follows(kept: _Kept, first_hour: int, last_hour: int) -> bool:
    """Whether the window moved forward from ``kept``'s, by little enough to follow."""
    return kept.last_hour <= last_hour and 0 <= first_hour - kept.first_hour <= MAX_SHIFT_HOURS


def _summed(conn: sqlite3.Connection, first_hour: int, last_hour: int) -> tuple[Sums, Rows]:
    summed = Sums.empty()
    summed.add(hour_rows(conn, first_hour, last_hour - 1))
    newest = hour_rows(conn, last_hour, last_hour)
    summed.add(newest)
    return summed, newest
