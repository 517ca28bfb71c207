"""What health, /stats and /event-rate report: SQL over the store and the alerts.

Stats read only pre-aggregated tables (per-minute totals, per-hour counts by event
type/entity/domain, batches) and counts kept in memory: their cost depends on the number
of distinct entities, never on the number of stored events. The 24h and 7d breakdowns
come from hourly sums kept between requests (store/hour_sums.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import partial
import heapq
import sqlite3
from typing import Any, Final, Literal

from ..contract import (
    Alert,
    EntityCount,
    Metrics,
    Percentiles,
    Stats,
    StatsPeriod,
    StoreSummary,
    TrendPoint,
)
from ..store import time_blocks
from ..store.db import Store
from ..store.deferred_index import unindexed_counts
from ..store.hour_sums import HourSums, Sums
from ..store.memory_counts import LastHourCounts, UnindexedCounts
from ..times import US_PER_MINUTE, now_us, us_to_iso
from .latencies import LatencyWindows

type Level = Literal["warning", "error"]
type Metric = Literal["error_rate", "success_rate", "processing"]
# period -> (minutes, trend bucket in minutes, breakdown from the hourly table?)
PERIODS: Final[dict[StatsPeriod, tuple[int, int, bool]]] = {
    "15m": (15, 1, False),
    "1h": (60, 5, False),
    "24h": (1440, 60, True),
    "7d": (10080, 360, True),
}
TOP_ENTITIES: Final = 10
# /event-rate's per-minute history: what the panel's chart shows when it opens.
RATE_HISTORY_MINUTES: Final = 60
# HomeIQ admin API thresholds (percent; milliseconds for processing).
ERROR_RATE_ERROR: Final = 5.0
ERROR_RATE_WARNING: Final = 2.0
SUCCESS_RATE_ERROR: Final = 90.0
SUCCESS_RATE_WARNING: Final = 95.0
LATENCY_WARNING_MS: Final = 1000.0


def store_info(conn: sqlite3.Connection) -> dict[str, Any]:
    """Events stored and the time of the last accepted batch (health)."""
    events = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    last = conn.execute("SELECT MAX(received_us) FROM batches").fetchone()[0]
    return {"events_stored": int(events), "last_ingest_us": last}


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return round(sorted_values[index], 3)


def ingest_health(
    conn: sqlite3.Connection,
    now_us: int,
    minutes: int,
    kept: LatencyWindows | None = None,
    generation: int | None = None,
) -> dict[str, Any]:
    """Batches, error/success rate and latency over the last ``minutes`` (the latencies
    from ``kept`` when given: status/latencies.py)."""
    start_us = now_us - minutes * US_PER_MINUTE
    if kept is None:
        kept = LatencyWindows()
        generation = None
    latencies = kept.sorted_latencies(conn, start_us, minutes, generation)
    rejected = conn.execute(
        "SELECT COALESCE(SUM(n), 0) FROM batch_rejects WHERE minute > ?",
        (start_us // US_PER_MINUTE,),
    ).fetchone()[0]
    total = len(latencies) + rejected
    error_rate = round(100.0 * rejected / total, 3) if total else 0.0
    return {
        "batches_accepted": len(latencies),
        "batches_rejected": rejected,
        "error_rate": error_rate,
        "success_rate": round(100.0 - error_rate, 3),
        "ingest_latency_ms": {
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
        },
    }


def alerts(metrics: dict[str, Any]) -> list[Alert]:
    out: list[Alert] = []

    def alert(level: Level, metric: Metric, value: float, threshold: float, message: str) -> None:
        out.append(Alert(level, metric, message, value, threshold))

    err = metrics["error_rate"]
    if err > ERROR_RATE_ERROR:
        alert("error", "error_rate", err, ERROR_RATE_ERROR, f"{err}% of batches rejected")
    elif err > ERROR_RATE_WARNING:
        alert("warning", "error_rate", err, ERROR_RATE_WARNING, f"{err}% of batches rejected")
    ok = metrics["success_rate"]
    if ok < SUCCESS_RATE_ERROR:
        alert("error", "success_rate", ok, SUCCESS_RATE_ERROR, f"only {ok}% of batches accepted")
    elif ok < SUCCESS_RATE_WARNING:
        alert(
            "warning", "success_rate", ok, SUCCESS_RATE_WARNING, f"only {ok}% of batches accepted"
        )
    p95 = metrics["ingest_latency_ms"]["p95"]
    if p95 is not None and p95 > LATENCY_WARNING_MS:
        alert("warning", "processing", p95, LATENCY_WARNING_MS, f"ingest p95 takes {p95} ms")
    return out


def _names(conn: sqlite3.Connection, table: str, col: str, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, {col} FROM {table} WHERE id IN ({marks})", tuple(ids))
    return {int(i): str(v) for i, v in rows}


def _ranked(counts: Counter[int], first: int | None = None) -> list[tuple[int, int]]:
    """Most first; equal counts by id, so kept and fresh sums answer alike."""
    items: Iterable[tuple[int, int]] = counts.items()
    if first is not None and len(counts) > first:
        # Only what can make the cut is sorted (an entity breakdown has thousands).
        least = heapq.nlargest(first, counts.values())[-1]
        items = [(k, n) for k, n in items if n >= least]
    return sorted(items, key=lambda item: (-item[1], item[0]))[:first]


def _last_minutes(
    conn: sqlite3.Connection, now_us: int, minutes: int
) -> tuple[int, int, list[tuple[int, int]]]:
    """The first and last minute of the last ``minutes`` up to now, and their stored counts
    as (minute, events) rows (minutes without events have none)."""
    now_min = now_us // US_PER_MINUTE
    first_min = now_min - minutes + 1
    rows = conn.execute(
        "SELECT minute, events FROM stat_minute WHERE minute >= ? AND minute <= ?",
        (first_min, now_min),
    ).fetchall()
    return first_min, now_min, rows


def compute_stats(
    conn: sqlite3.Connection,
    *,
    period: StatsPeriod,
    now_us: int,
    last_hour: LastHourCounts,
    unindexed: UnindexedCounts,
    hour_sums: HourSums,
    latencies: LatencyWindows,
    db_size_bytes: int,
) -> Stats:
    # Before the snapshot begins with the first query (store/hour_sums.py).
    generation = hour_sums.generation()
    minutes, bucket, hourly = PERIODS[period]
    now_min = now_us // US_PER_MINUTE
    first_min = now_min - minutes + 1
    # Summed by bucket in SQL: a day is 1,440 minutes, a week 10,080.
    trend = dict(
        conn.execute(
            "SELECT (minute - ?) / ?, SUM(events) FROM stat_minute"
            " WHERE minute >= ? AND minute <= ? GROUP BY 1",
            (first_min, bucket, first_min, now_min),
        ).fetchall()
    )
    events = sum(trend.values())
    if hourly:
        # Whole clock hours: the breakdown covers up to 59 minutes more than the period.
        # Their sums are kept between requests (store/hour_sums.py).
        first_hour, end_hour = first_min // 60, now_min // 60
        sums = hour_sums.sums(conn, first_hour, end_hour, generation, period)
        # The newest events are not in the hourly table yet (store/deferred_index.py).
        rows = unindexed_counts(conn, first_hour * 60, end_hour * 60 + 59, unindexed)
    else:
        sums = Sums.empty()
        rows = [(*k, n) for k, n in last_hour.window(first_min, now_min).items()]
    sums.add(rows)
    by_type, by_entity, by_domain = sums.by_type, sums.by_entity, sums.by_domain
    top = _ranked(by_entity, TOP_ENTITIES)
    type_names = _names(conn, "event_types", "event_type", set(by_type))
    domain_names = _names(conn, "strings", "value", set(by_domain))
    entity_names = _names(conn, "entities", "entity_id", {e for e, _ in top})
    # The snapshot began: it is the generation's if no restore started since.
    same = generation % 2 == 0 and hour_sums.generation() == generation
    health = ingest_health(conn, now_us, minutes, latencies, generation if same else None)
    metrics = Metrics(
        events=events,
        events_per_minute=round(events / minutes, 3),
        by_domain={domain_names[d]: n for d, n in _ranked(by_domain)},
        by_event_type={type_names[t]: n for t, n in _ranked(by_type)},
        top_entities=[EntityCount(entity_names[e], n) for e, n in top],
        batches_accepted=health["batches_accepted"],
        batches_rejected=health["batches_rejected"],
        error_rate=health["error_rate"],
        success_rate=health["success_rate"],
        ingest_latency_ms=Percentiles(**health["ingest_latency_ms"]),
    )
    stored = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0]
    oldest, newest = time_blocks.oldest_and_newest(conn)
    return Stats(
        period=period,
        generated_at=us_to_iso(now_us),
        metrics=metrics,
        trends=[
            TrendPoint(us_to_iso((first_min + i * bucket) * US_PER_MINUTE), trend.get(i, 0))
            for i in range(-(-minutes // bucket))
        ],
        alerts=alerts(health),
        store=StoreSummary(
            events_stored=stored,
            oldest_event=None if oldest is None else us_to_iso(oldest),
            newest_event=None if newest is None else us_to_iso(newest),
            db_size_bytes=db_size_bytes,
        ),
    )


async def recent_alerts(store: Store) -> list[Alert]:
    """Alerts over the last 15 minutes (health turns degraded while any fires)."""
    return alerts(await store.read(partial(ingest_health, now_us=now_us(), minutes=15)))


def minute_counts(conn: sqlite3.Connection, now_us: int, minutes: int) -> list[dict[str, Any]]:
    """Events per minute (by the time they fired) for the last ``minutes``, oldest first."""
    first_min, now_min, per_minute = _last_minutes(conn, now_us, minutes)
    counts = dict(per_minute)
    return [
        {"start": us_to_iso(minute * US_PER_MINUTE), "events": int(counts.get(minute, 0))}
        for minute in range(first_min, now_min + 1)
    ]
