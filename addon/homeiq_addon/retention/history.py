"""History from rollups, for ``/api/v1/history/{entity_id}?resolution=hour|day`` and for
the part of a raw query whose raw events retention has already removed.

Where the requested tier is gone too, the next coarser tier answers; such points carry
``"resolution"`` so a client can tell an hourly point from a daily one.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..history.queries import raw_history
from ..store import rollup_rows
from ..store.ids import entity_ref
from ..times import US_PER_DAY, US_PER_HOUR, us_to_iso
from . import rollups, source

if TYPE_CHECKING:
    from ..store.db import Store


def _tier(
    conn: sqlite3.Connection,
    entity_id: str,
    tier: str,
    *,
    start_us: int,
    end_us: int,
    limit: int,
) -> list[dict[str, Any]]:
    ref = entity_ref(conn, entity_id)
    if ref is None or limit <= 0:
        return []
    # A period is included when it overlaps [start, end).
    if tier == "hour":
        first, end = start_us // US_PER_HOUR, -(-end_us // US_PER_HOUR)
        found = rollup_rows.read_hour_range(conn, ref, first, end)[:limit]
        return [rollups.point(agg, us_to_iso(hour * US_PER_HOUR)) for hour, agg in found]
    first, end = start_us // US_PER_DAY, -(-end_us // US_PER_DAY)
    days = rollup_rows.read_range(conn, rollup_rows.DAILY, ref, first, end)[:limit]
    return [rollups.point(agg, us_to_iso(day * US_PER_DAY)) for day, agg in days]


def _oldest_hour(conn: sqlite3.Connection, entity_id: str) -> int | None:
    """Start (µs) of the entity's oldest hourly rollup."""
    ref = entity_ref(conn, entity_id)
    row = None if ref is None else conn.execute(
        "SELECT day, hour_figures FROM rollups_hourly WHERE entity_ref = ?"
        " ORDER BY day LIMIT 1", (ref,)
    ).fetchone()  # fmt: skip
    if row is None:
        return None
    return (int(row[0]) * 24 + rollup_rows.first_hour(row[1])) * US_PER_HOUR


def _tagged(points: list[dict[str, Any]], tier: str) -> list[dict[str, Any]]:
    return [{**p, "resolution": tier} for p in points]


def rollup_points(
    conn: sqlite3.Connection, entity_id: str, resolution: str, *, start_us: int, end_us: int,
    limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Oldest first. ``resolution`` is "hour" or "day"; for "hour", days stand in for
    hours already purged."""
    if resolution == "day":
        return _tier(conn, entity_id, "day", start_us=start_us, end_us=end_us, limit=limit)
    oldest_hour = _oldest_hour(conn, entity_id)
    points: list[dict[str, Any]] = []
    if oldest_hour is None or start_us < oldest_hour:
        cover_end = end_us if oldest_hour is None else min(end_us, oldest_hour)
        days = _tier(conn, entity_id, "day", start_us=start_us, end_us=cover_end, limit=limit)
        points = _tagged(days, "day")
        start_us = cover_end
    if start_us < end_us:
        points += _tier(conn, entity_id, "hour", start_us=start_us, end_us=end_us,
                        limit=limit - len(points))  # fmt: skip
    return points[:limit]


def raw_gap_points(
    conn: sqlite3.Connection, entity_id: str, start_us: int, end_us: int, limit: int
) -> list[dict[str, Any]]:
    """Rollup points for the part of [start, end) older than the entity's oldest raw
    event, when retention removed raw events there; tagged with their resolution."""
    oldest_raw = source.oldest_raw(conn, entity_id)
    gap_end = end_us if oldest_raw is None else min(end_us, oldest_raw)
    if start_us >= gap_end:
        return []
    # Whole hours only: the hour holding the oldest raw event is answered by raw events.
    gap_end = gap_end // US_PER_HOUR * US_PER_HOUR
    if start_us >= gap_end:
        return []
    points = rollup_points(conn, entity_id, "hour", start_us=start_us, end_us=gap_end, limit=limit)
    return [p if "resolution" in p else {**p, "resolution": "hour"} for p in points]


async def history_points(
    store: Store, entity_id: str, resolution: str, *, start_us: int, end_us: int, limit: int
) -> list[dict[str, Any]]:
    """Entry point for the store's history handler (hour/day resolution)."""
    return await store.read(
        lambda c: rollup_points(
            c, entity_id, resolution, start_us=start_us, end_us=end_us, limit=limit
        )
    )


async def hour_provider(
    store: Store, entity_id: str, start_us: int, end_us: int, limit: int
) -> list[dict[str, Any]]:
    return await history_points(
        store, entity_id, "hour", start_us=start_us, end_us=end_us, limit=limit
    )


async def day_provider(
    store: Store, entity_id: str, start_us: int, end_us: int, limit: int
) -> list[dict[str, Any]]:
    return await history_points(
        store, entity_id, "day", start_us=start_us, end_us=end_us, limit=limit
    )


async def raw_provider(
    store: Store, entity_id: str, start_us: int, end_us: int, limit: int
) -> list[dict[str, Any]]:
    """Raw points, preceded by rollup points where retention already removed raw events."""

    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        gap = raw_gap_points(conn, entity_id, start_us, end_us, limit)
        if len(gap) >= limit:
            return gap[:limit]
        raw = raw_history(conn, entity_id, start_us=start_us, end_us=end_us, limit=limit - len(gap))
        return gap + raw

    return await store.read(read)
