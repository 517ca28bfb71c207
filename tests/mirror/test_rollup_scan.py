"""A backfill's scan of the stored rollups sends each one exactly once, in small chunks,
across the rows that pack 24 hours or 32 days; and resumes from a position saved by
schema version 7 (an entity and the last day sent) with the days after it."""

from __future__ import annotations

from pathlib import Path
import sqlite3

import orjson

from homeiq_addon.mirror.outbox import SCAN_START, Selection, read_rollup_scan
from homeiq_addon.store import rollup_rows
from homeiq_addon.store.db import Store
from homeiq_addon.store.rollup_rows import Agg
from homeiq_addon.times import US_PER_DAY, US_PER_HOUR

FIRST_DAY = 20_020  # 70 days over three 32-day rows (20_000-31, 20_032-63, 20_064-95)
ENTITIES = ("sensor.a", "sensor.b", "light.c")


def _agg(entity_id: str, n: int) -> Agg:
    if entity_id.startswith("sensor"):
        return Agg(1, float(n), float(n), float(n), 1, 1, {}, str(n))
    return Agg(0, None, None, None, 1, 1, {"on": 3600.0}, "on")


def _fill(conn: sqlite3.Connection) -> dict[str, int]:
    for entity_id in ENTITIES:
        conn.execute("INSERT INTO entities (entity_id, domain) VALUES (?, ?)",
                     (entity_id, entity_id.partition(".")[0]))  # fmt: skip
    refs = rollup_rows.entity_refs(conn, list(ENTITIES))
    for entity_id, ref in refs.items():
        rollup_rows.write_days(
            conn, [(ref, FIRST_DAY + d, _agg(entity_id, d)) for d in range(70) if d % 5 != 3]
        )
        for day in (FIRST_DAY, FIRST_DAY + 1):
            hours = {h: _agg(entity_id, h) for h in range(0, 24, 3)}
            rollup_rows.write_hours(conn, ref, day, hours)
    return refs


def _scan(store: Store, scan: str, limit: int) -> list[tuple[str, str, int]]:
    """Every rollup sent from ``scan`` to the end, as (measurement, entity, start µs): the
    line of its figures (one per rollup; time in state has lines of its own)."""
    sent = []
    everything = Selection()
    position: str | None = scan
    while position is not None:
        chunk = store.read_sync(
            lambda c, p=position: read_rollup_scan(c, p, limit, everything)  # type: ignore[misc]
        )
        for line in chunk.lines:
            head, _, stamp = line.rpartition(" ")
            measurement, *tags = head.split(" ")[0].split(",")
            if measurement in ("homeiq_hourly", "homeiq_daily"):
                entity = dict(t.split("=") for t in tags)["entity_id"]
                sent.append((measurement, entity, int(stamp)))
        position = chunk.next_scan
    return sent


def _expected(days: range) -> list[tuple[str, str, int]]:
    return [("homeiq_daily", entity_id, (FIRST_DAY + d) * US_PER_DAY)
            for entity_id in ENTITIES for d in days if d % 5 != 3]  # fmt: skip


def test_a_backfill_sends_every_rollup_once(tmp_path: Path) -> None:
    store = Store.open_sync(tmp_path)
    try:
        store.submit(_fill).result()
        for limit in (1, 40, 1000):
            sent = _scan(store, SCAN_START, limit)
            assert len(sent) == len(set(sent)), limit
            hourly = [s for s in sent if s[0] == "homeiq_hourly"]
            assert sorted(h[2] for h in hourly if h[1] == "sensor.a") == sorted(
                (day * 24 + h) * US_PER_HOUR for day in (FIRST_DAY, FIRST_DAY + 1)
                for h in range(0, 24, 3)
            )  # fmt: skip
            assert len(hourly) == 3 * 2 * 8
            daily = [s for s in sent if s[0] == "homeiq_daily"]
            assert sorted(daily) == sorted(_expected(range(70))), limit
    finally:
        store.close_sync()


def test_a_scan_saved_by_version_7_resumes_after_its_day(tmp_path: Path) -> None:
    store = Store.open_sync(tmp_path)
    try:
        refs = store.submit(_fill).result()
        # Version 7 kept a daily row per day: its position is the last (entity, day) sent.
        ref = refs["sensor.b"]
        saved = orjson.dumps(["day", ref, FIRST_DAY + 40]).decode()
        sent = _scan(store, saved, 40)
        later = {e for e, r in refs.items() if r > ref}
        expected = [
            s for s in _expected(range(70))
            if s[1] in later or (s[1] == "sensor.b" and s[2] > (FIRST_DAY + 40) * US_PER_DAY)
        ]  # fmt: skip
        assert sorted(sent) == sorted(expected)
    finally:
        store.close_sync()
