"""The retention job: roll up, purge each tier per policy, drop attribute sets no event
uses any more (orphans.py), give the space back.

Everything runs through ``Store.write`` in small transactions whose size adapts to a
time budget, so an ingest batch queued behind the job waits at most one small step.
A dry run walks the same rows with the same decisions on a reader and deletes nothing,
so it reports exactly what a real run at the same ``now`` would delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
import logging
from pathlib import Path
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..store import maintenance, rollup_rows
from ..store.connection import connect
from ..store.mirror_outbox import retention_floor
from ..times import US_PER_DAY, US_PER_HOUR, US_PER_SECOND
from . import orphans, rollups, source
from .policies import Days, Policy, PolicySet

if TYPE_CHECKING:
    from ..store.db import Store

_LOGGER = logging.getLogger(__name__)
# Each writer step aims at this many seconds, well under the 100 ms ingest promise.
STEP_BUDGET_S: Final = 0.010
CHECKPOINT_EVERY_S: Final = 0.25
MIN_CHUNK: Final = 200
MAX_CHUNK: Final = 20_000
# Pages handed back per vacuum step, adapted like the other steps: moving a 4 KiB page
# costs more the more pages behind it move too (a 1024-page step took up to 217 ms).
MIN_VACUUM_PAGES: Final = 16
MAX_VACUUM_PAGES: Final = 1024


@dataclass(slots=True)
class Counts:
    raw_events: int = 0
    hourly_rollups: int = 0
    daily_rollups: int = 0


@dataclass(slots=True)
class Report:
    dry_run: bool
    now_us: int
    per_policy: dict[str, Counts] = field(default_factory=dict)
    hours_built: int = 0
    days_built: int = 0
    attribute_sets_removed: int | None = None  # not known before a real run
    freed_bytes: int = 0

    def count(self, policy: Policy) -> Counts:
        return self.per_policy.setdefault(policy.name, Counts())

    def to_json(self, policies: PolicySet) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for policy in policies.all:
            counts = self.per_policy.get(policy.name, Counts())
            rows.append({"name": policy.name, "raw_events": counts.raw_events,
                         "hourly_rollups": counts.hourly_rollups,
                         "daily_rollups": counts.daily_rollups})  # fmt: skip
        keys = ("raw_events", "hourly_rollups", "daily_rollups")
        totals = {k: sum(int(r[k]) for r in rows) for k in keys}
        return {"dry_run": self.dry_run, "policies": rows, "totals": totals,
                "rollups_built": {"hours": self.hours_built, "days": self.days_built},
                "attribute_sets_removed": self.attribute_sets_removed,
                "freed_bytes": self.freed_bytes}  # fmt: skip


class _Stepper:
    """Adapts the rows per transaction so each step stays within the time budget."""

    def __init__(self, size: int = 2000, least: int = MIN_CHUNK, most: int = MAX_CHUNK) -> None:
        self.size, self.least, self.most = size, least, most

    def measure(self, started: float) -> None:
        took = time.perf_counter() - started
        if took > STEP_BUDGET_S * 1.5:
            self.size = max(self.least, self.size // 2)
        elif took < STEP_BUDGET_S / 2:
            self.size = min(self.most, self.size * 2)


def _cutoff_us(now_us: int, days: Days) -> int | None:
    return None if days is None else now_us - int(days * US_PER_DAY)


_KINDS: Final[dict[str, tuple[Callable[..., Any], Callable[..., Any]]]] = {
    # kind: (find the next dirty period, build a slice of it)
    "hour": (rollups.dirty_run, rollups.build_hours),
    "day": (rollups.dirty_days, rollups.build_days),
}


async def build_rollups(store: Store, now_us: int) -> tuple[int, int]:
    """Build every dirty hour, then every dirty day, that has ended.

    A period is claimed (its dirty mark moved to ``retention_meta``) and then built in
    entity slices, one writer step each, within the step's time budget. A late event
    arriving meanwhile marks the period dirty again, so it is rebuilt once more; after a
    crash the claim is found and the period resumed from the last slice.
    """
    current_hour = now_us // US_PER_HOUR
    done = {"hour": 0, "day": 0}
    for kind, before in (("hour", current_hour), ("day", current_hour // 24)):
        while True:
            completed, more = await store.write(partial(_build_step, kind=kind, before=before))
            done[kind] += completed
            if not more:
                break
    return done["hour"], done["day"]


def _build_step(conn: sqlite3.Connection, kind: str, before: int) -> tuple[int, bool]:
    find, build = _KINDS[kind]
    key = f"building_{kind}"
    deadline = time.perf_counter() + STEP_BUDGET_S
    completed = 0
    while time.perf_counter() < deadline:
        claim = conn.execute("SELECT value FROM retention_meta WHERE key = ?", (key,)).fetchone()
        if claim is not None:
            period, after = orjson.loads(claim[0])
            if isinstance(period, int):  # claimed by an older version: one hour, or day
                period = [period, period + 1]
        else:
            period, after = find(conn, before), ""
            if period is None:
                return completed, False
            _unmark(conn, kind, period)
        period = tuple(period)
        last = build(conn, period, after, deadline)
        if last is not None:
            conn.execute(
                "INSERT OR REPLACE INTO retention_meta VALUES (?, ?)",
                (key, orjson.dumps([period, last]).decode()),
            )
            return completed, True
        conn.execute("DELETE FROM retention_meta WHERE key = ?", (key,))
        if kind == "hour":
            conn.execute("INSERT OR IGNORE INTO rollup_dirty_days(day) VALUES (?)",
                         (period[0] // 24,))  # fmt: skip
        completed += period[1] - period[0]
    return completed, True


def _unmark(conn: sqlite3.Connection, kind: str, period: Any) -> None:
    """The claimed period is no longer dirty (a later event marks it again)."""
    table, column = ("dirty_hours", "hour") if kind == "hour" else ("rollup_dirty_days", "day")
    conn.execute(f"DELETE FROM {table} WHERE {column} >= ? AND {column} < ?", tuple(period))


def _checkpoint_loop(path: Path, stop: threading.Event) -> None:
    """Copy the WAL back into the database from a thread of its own while the job runs.

    The job writes a lot of WAL; left to the writer's automatic checkpoint, that copy
    (and its fsync) would happen inside a commit and hold ingest up for it.
    """
    conn = connect(path)
    try:
        while not stop.wait(CHECKPOINT_EVERY_S):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        conn.close()


async def run(store: Store, policies: PolicySet, *, now_us: int, dry_run: bool) -> Report:
    stop = threading.Event()
    checkpointer = asyncio.create_task(asyncio.to_thread(_checkpoint_loop, store.path, stop))
    try:
        return await _run(store, policies, now_us=now_us, dry_run=dry_run)
    finally:
        stop.set()
        await checkpointer


async def _run(store: Store, policies: PolicySet, *, now_us: int, dry_run: bool) -> Report:
    report = Report(dry_run=dry_run, now_us=now_us)
    # Rollups are derived data and nothing is lost by building them, so a dry run
    # builds them too: it then sees the same rollup rows the real run would purge.
    report.hours_built, report.days_built = await build_rollups(store, now_us)
    # Raw events of an hour not rolled up yet (the current one, or a late arrival)
    # must stay until their rollup exists.
    bound = now_us // US_PER_HOUR * US_PER_HOUR
    oldest = await store.read(lambda c: rollups.next_dirty_hour(c, 1 << 62))
    if oldest is not None:
        bound = min(bound, oldest * US_PER_HOUR)
    await _purge_raw(store, policies, report, bound)
    await _purge_rollups(store, policies, report, "hourly")
    await _purge_rollups(store, policies, report, "daily")
    if not dry_run:
        after: int | None = -1
        while after is not None:  # in steps: ingest goes on between them
            after = await store.write(
                partial(source.forget_purged, after=after, budget_s=STEP_BUDGET_S)
            )
        report.attribute_sets_removed = await orphans.remove_orphan_attributes(store)
        # The stats' bookkeeping of the same days goes too (as the store's own pruning
        # would within minutes), so that the space handed back below includes it. Never
        # by a "now" ahead of the clock: the batch ids must stay for their 8 days.
        await maintenance.prune(store, min(now_us / US_PER_SECOND, time.time()))
        report.freed_bytes = await incremental_vacuum(store)
    return report


async def _purge_raw(store: Store, policies: PolicySet, report: Report, bound: int) -> None:
    cutoffs = [_cutoff_us(report.now_us, p.raw_days) for p in policies.all]
    limits = [c for c in cutoffs if c is not None]
    if not limits:
        return
    max_cutoff = min(max(limits), bound)
    position = (-(1 << 62), -1)
    stepper = _Stepper()
    # The events a mirror target has not received stay (store/mirror_outbox.py). Cursors
    # only move forward, so the floor read once holds for the whole run.
    floor = await store.read(partial(retention_floor, now_us=report.now_us))
    if floor is None:
        floor = 1 << 62

    def step(conn: sqlite3.Connection, size: int) -> tuple[int, int] | None:
        rows = source.purge_candidates(conn, position, max_cutoff, size)
        if not rows:
            return None
        doomed = []
        for rowid, time_us, entity_id, domain, event_type in rows:
            policy = policies.for_event(entity_id, domain, event_type)
            cutoff = _cutoff_us(report.now_us, policy.raw_days)
            if cutoff is not None and time_us < min(cutoff, bound) and rowid <= floor:
                doomed.append(rowid)
                report.count(policy).raw_events += 1
        if doomed and not report.dry_run:
            source.delete_events(conn, doomed)
        return rows[-1][1], rows[-1][0]

    while True:
        started = time.perf_counter()
        size = stepper.size
        if report.dry_run:
            last = await store.read(partial(step, size=size * 4))
        else:
            last = await store.write(partial(step, size=size))
            stepper.measure(started)
        if last is None:
            return
        position = last


async def _purge_rollups(store: Store, policies: PolicySet, report: Report, tier: str) -> None:
    packing = rollup_rows.TIERS[tier]
    entities: list[tuple[int, str]] = await store.read(
        lambda c: c.execute(
            "SELECT e.id, e.entity_id FROM entities e WHERE EXISTS"
            f" (SELECT 1 FROM {packing.table} r WHERE r.entity_ref = e.id)"
        ).fetchall()
    )
    for ref, entity_id in entities:
        policy = policies.for_event(entity_id, None, "state_changed")
        cutoff = _cutoff_us(report.now_us, policy.hourly_days if tier == "hourly" else
                            policy.daily_days)  # fmt: skip
        if cutoff is None:
            continue
        # A period is dropped once it has ended before the cutoff: periods before
        # ``limit`` (an epoch hour, or day), which may end inside a row.
        limit = cutoff // packing.period_us
        purge = partial(_purge_entity, tier=packing, ref=ref, limit=limit,
                        dry_run=report.dry_run)  # fmt: skip
        n = 0
        if report.dry_run:
            n = await store.read(purge)
        else:
            while removed := await store.write(purge):
                n += removed
        counts = report.count(policy)
        if tier == "hourly":
            counts.hourly_rollups += n
        else:
            counts.daily_rollups += n


def _purge_entity(conn: sqlite3.Connection, tier: rollup_rows.Tier, ref: int, limit: int,
                  dry_run: bool) -> int:  # fmt: skip
    """Drop (or, in a dry run, count) an entity's rollups before ``limit``, a slice at a
    time; returns how many went (0: none left)."""
    table, row = tier.table, tier.row_column
    whole_rows = limit // tier.per_row
    # The row the cutoff falls in keeps its periods from the cutoff on.
    edge = rollup_rows.read_row(conn, tier, ref, whole_rows) if limit % tier.per_row else {}
    kept = {p: agg for p, agg in edge.items() if whole_rows * tier.per_row + p >= limit}
    if dry_run:
        n = conn.execute(f"SELECT COALESCE(SUM(n), 0) FROM {table} WHERE entity_ref = ?"
                         f" AND {row} < ?", (ref, whole_rows)).fetchone()[0]  # fmt: skip
        return int(n) + len(edge) - len(kept)
    found = conn.execute(
        f"SELECT {row} FROM {table} WHERE entity_ref = ? AND {row} < ?"
        f" ORDER BY {row} LIMIT 1 OFFSET {MAX_CHUNK // 4}",
        (ref, whole_rows),
    ).fetchone()
    upto = whole_rows if found is None else found[0]
    n = int(conn.execute(f"SELECT COALESCE(SUM(n), 0) FROM {table} WHERE entity_ref = ?"
                         f" AND {row} < ?", (ref, upto)).fetchone()[0])  # fmt: skip
    conn.execute(f"DELETE FROM {table} WHERE entity_ref = ? AND {row} < ?", (ref, upto))
    if upto == whole_rows and len(kept) < len(edge):
        rollup_rows.write_rows(conn, tier, [(ref, whole_rows, kept)])
        n += len(edge) - len(kept)
    return n


async def incremental_vacuum(store: Store) -> int:
    """Return free pages to the file system a few at a time; returns bytes freed."""

    def info(conn: sqlite3.Connection) -> tuple[int, int, int]:
        mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(mode), int(free), int(size)

    mode, free, page_size = await store.read(info)
    if mode != 2 or not free:  # 2 = INCREMENTAL
        return 0
    stepper = _Stepper(128, MIN_VACUUM_PAGES, MAX_VACUUM_PAGES)

    def step(conn: sqlite3.Connection, pages: int) -> int:
        return len(conn.execute(f"PRAGMA incremental_vacuum({pages})").fetchall())

    freed = 0
    while freed < free:
        before = freed
        started = time.perf_counter()
        await store.write(partial(step, pages=stepper.size))
        stepper.measure(started)
        freed = free - (await store.read(info))[1]
        if freed <= before:
            break
    return freed * page_size
