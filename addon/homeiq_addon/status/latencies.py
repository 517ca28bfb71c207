"""The accepted batches' latencies of each stats period, sorted and kept between requests.

The latency percentiles need every latency of the period: a day of batches every few
seconds is tens of thousands, each read through the time index into the ``batches``
table (keyed by batch id), which cost more than the rest of a 24h answer together.
Batches are only ever added (with the time they were received, which moves forward) and
pruned long after the longest period; so a request takes the kept list, removes the
batches that left the window and adds the ones received since. It checks first, by a
count over the time index alone, that the kept part of the window holds exactly the
batches it kept; if not (the clock went back, say), and after a restore (the store's
generation, store/hour_sums.py), it reads the period again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
import sqlite3
import threading


@dataclass(slots=True, frozen=True)
class _Kept:
    generation: int
    after_us: int  # the window: received after this ...
    upto_us: int  # ... up to this (the newest batch it holds)
    latencies: list[float]  # sorted


class LatencyWindows:
    """Thread-safe: readers take, move and keep the lists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[int, _Kept] = {}  # by period in minutes

    def sorted_latencies(
        self, conn: sqlite3.Connection, after_us: int, minutes: int, generation: int | None
    ) -> list[float]:
        """The latencies of the batches received after ``after_us``, sorted, as this
        snapshot holds them; ``generation`` (None: keep nothing) as for HourSums.sums."""
        with self._lock:
            kept = self._kept.get(minutes)
        moved = None
        if kept is not None and kept.generation == generation and after_us >= kept.after_us:
            moved = _moved(conn, kept, after_us)
        if moved is None:
            moved = _read(conn, after_us)
        latencies, upto_us = moved
        if generation is not None:
            with self._lock:
                self._kept[minutes] = _Kept(generation, after_us, upto_us, latencies)
        return latencies


def _read(conn: sqlite3.Connection, after_us: int) -> tuple[list[float], int]:
    rows = conn.execute(
        "SELECT received_us, latency_ms FROM batches WHERE received_us > ?", (after_us,)
    ).fetchall()
    return sorted(r[1] for r in rows), max((r[0] for r in rows), default=after_us)


def _moved(conn: sqlite3.Connection, kept: _Kept, after_us: int) -> tuple[list[float], int] | None:
    """``kept`` moved to the window after ``after_us``; None if it does not hold."""
    if kept.upto_us <= after_us:
        return None  # all of it left: as cheap to read the window
    left = [
        r[0]
        for r in conn.execute(
            "SELECT latency_ms FROM batches WHERE received_us > ? AND received_us <= ?",
            (kept.after_us, after_us),
        )
    ]
    still = conn.execute(
        "SELECT COUNT(*) FROM batches WHERE received_us > ? AND received_us <= ?",
        (after_us, kept.upto_us),
    ).fetchone()[0]
    if still != len(kept.latencies) - len(left):
        return None  # batches came or went in the kept part: read it all
    latencies = list(kept.latencies)
    for latency in left:
        at = bisect.bisect_left(latencies, latency)
        if at == len(latencies) or latencies[at] != latency:
            return None  # not what was kept
        del latencies[at]
    newer = conn.execute(
        "SELECT received_us, latency_ms FROM batches WHERE received_us > ?", (kept.upto_us,)
    ).fetchall()
    for _, latency in newer:
        bisect.insort(latencies, latency)
    return latencies, max((r[0] for r in newer), default=kept.upto_us)
