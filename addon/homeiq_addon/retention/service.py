"""The retention service: stored policies, runs (one at a time), schedules and stats."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import orjson

from . import job, source
from .policies import DEFAULT_NAME, TIERS, Policy, PolicySet

if TYPE_CHECKING:
    from ..config import Config
from .. import times
from ..errors import BadRequest, Conflict, NotFound
from ..store import rollup_rows
from ..store.db import Store
from ..times import US_PER_DAY, US_PER_HOUR, next_daily, us_to_iso

_LOGGER = logging.getLogger(__name__)
SIZES_MAX_AGE_S = 300.0
ROLLUP_INTERVAL_S = 300.0


class PolicyConflict(Conflict):
    """A policy of that name exists already."""


class RunInProgress(Conflict):
    """A retention run is already going on."""


def default_from_config(config: Config) -> Policy:
    """The built-in policy from the add-on options (0 daily days = forever)."""
    daily = config.daily_retention_days or None
    return Policy(
        DEFAULT_NAME, "default", None,
        float(config.raw_retention_days),
        float(config.hourly_retention_days),
        None if daily is None else float(daily),
    )  # fmt: skip


class RetentionService:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.schedule = config.retention_schedule
        # Rollups are built between the daily runs this often (seconds); not an option.
        self.rollup_interval = ROLLUP_INTERVAL_S
        self._lock = asyncio.Lock()
        self.running = False
        self.next_run: datetime | None = None
        self._sizes: tuple[float, dict[str, int]] = (0.0, {})

    # --- policies ----------------------------------------------------------------------

    async def start(self) -> None:
        """Apply the options' default policy when the options changed since last start."""
        configured = default_from_config(self.config).to_json()

        def seed(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT value FROM retention_meta WHERE key = 'default_from_options'"
            ).fetchone()
            applied = orjson.dumps(configured).decode()
            if row is not None and row[0] == applied:
                return  # the panel's edits stay until the options change again
            _save(conn, configured)
            conn.execute(
                "INSERT OR REPLACE INTO retention_meta VALUES ('default_from_options', ?)",
                (applied,),
            )

        await self.store.write(seed)

    async def policies(self) -> PolicySet:
        rows = await self.store.read(
            lambda c: c.execute("SELECT body FROM retention_policies ORDER BY name").fetchall()
        )
        default = default_from_config(self.config)
        overrides = []
        for (body,) in rows:
            data = orjson.loads(body)
            if data["name"] == DEFAULT_NAME:
                default = Policy.from_body(_strip(data), default=True)
            else:
                overrides.append(Policy.from_body(_strip(data)))
        return PolicySet(default, overrides)

    async def list_policies(self) -> list[dict[str, Any]]:
        policies = await self.policies()
        return [p.to_json() for p in [policies.default, *policies.declared]]

    async def create(self, policy: Policy) -> dict[str, Any]:
        body = policy.to_json()

        def insert(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM retention_policies WHERE name = ?", (policy.name,)
            ).fetchone():
                raise PolicyConflict(f"name: a policy named {policy.name!r} already exists")
            _save(conn, body)

        await self.store.write(insert)
        return body

    async def update(self, name: str, policy: Policy) -> dict[str, Any]:
        body = policy.to_json()

        def replace(conn: sqlite3.Connection) -> None:
            exists = conn.execute("SELECT 1 FROM retention_policies WHERE name = ?", (name,))
            if name != DEFAULT_NAME and exists.fetchone() is None:
                raise NotFound(f"no policy named {name!r}")
            _save(conn, body)

        await self.store.write(replace)
        return body

    async def delete(self, name: str) -> None:
        if name == DEFAULT_NAME:
            raise BadRequest("name: the default policy cannot be deleted", code="invalid_policy")

        def remove(conn: sqlite3.Connection) -> None:
            if not conn.execute("DELETE FROM retention_policies WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no policy named {name!r}")

        await self.store.write(remove)

    # --- runs --------------------------------------------------------------------------

    async def run(self, *, dry_run: bool, now_us: int | None = None) -> dict[str, Any]:
        if self._lock.locked() and self.running:
            raise RunInProgress("a retention run is already in progress")
        async with self._lock:
            self.running = True
            try:
                return await self._run(dry_run, times.now_us() if now_us is None else now_us)
            finally:
                self.running = False

    async def _run(self, dry_run: bool, now_us: int) -> dict[str, Any]:
        started = times.now_us()
        policies = await self.policies()
        status, error, report = "ok", None, None
        try:
            report = await job.run(self.store, policies, now_us=now_us, dry_run=dry_run)
        except Exception as err:
            _LOGGER.exception("Retention run failed")
            status, error = "error", str(err)
        finished = times.now_us()
        self._sizes = (0.0, {})
        result: dict[str, Any] = {
            **(report.to_json(policies) if report else {"dry_run": dry_run}),
            "status": status, "error": error, "now": us_to_iso(now_us),
            "started_at": us_to_iso(started), "finished_at": us_to_iso(finished),
            "duration_seconds": round((finished - started) / 1e6, 3),
        }  # fmt: skip
        await self.store.write(
            lambda c: c.execute(
                "INSERT INTO retention_runs (started_at, finished_at, dry_run, status, report)"
                " VALUES (?, ?, ?, ?, ?)",
                (started, finished, int(dry_run), status, orjson.dumps(result).decode()),
            )
        )
        return result

    async def build_rollups(self) -> None:
        async with self._lock:
            await job.build_rollups(self.store, times.now_us())

    # --- stats -------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            rows, oldest, newest = source.raw_tier(conn)
            tiers = {"raw": _tier(rows, oldest, newest, 1)}
            for name, unit in (("hourly", US_PER_HOUR), ("daily", US_PER_DAY)):
                tiers[name] = _tier(*rollup_rows.tier_summary(conn, name), unit)
            sizes = self._table_sizes(conn)
            for name, tables in (("raw", ("events", "entity_postings", "event_blocks",
                                          "attributes", "attributes_by_hash")),
                                 ("hourly", ("rollups_hourly",)),
                                 ("daily", ("rollups_daily",))):  # fmt: skip
                tiers[name]["bytes"] = sum(sizes.get(t, 0) for t in tables)
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            last = conn.execute(
                "SELECT report FROM retention_runs WHERE dry_run = 0 ORDER BY id DESC LIMIT 1"
            ).fetchone()
            # The same size as health and stats report (file and WAL: Store.size_bytes).
            return {"tiers": tiers, "db_size_bytes": self.store.size_bytes(),
                    "free_bytes": page * free,
                    "last_run": None if last is None else orjson.loads(last[0])}  # fmt: skip

        result = await self.store.read(read)
        result["next_run"] = None if self.next_run is None else self.next_run.isoformat()
        result["schedule"] = self.schedule
        result["running"] = self.running
        return result

    def _table_sizes(self, conn: sqlite3.Connection) -> dict[str, int]:
        """Bytes per table and index. dbstat reads every page, seconds on a big database,
        so the figures are reused for a few minutes (and refreshed after each run)."""
        taken, sizes = self._sizes
        if time.monotonic() - taken > SIZES_MAX_AGE_S or not sizes:
            sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
            self._sizes = (time.monotonic(), sizes)
        return sizes

    # --- schedules ---------------------------------------------------------------------

    async def scheduler(self) -> None:
        """Retention daily at the configured time; rollups every few minutes between."""
        while True:
            now = datetime.now(UTC).astimezone()
            self.next_run = next_daily(self.schedule, now)
            wait = self.rollup_interval
            if self.next_run is not None:
                wait = min(wait, (self.next_run - now).total_seconds())
            await asyncio.sleep(max(wait, 1.0))
            due = self.next_run is not None and datetime.now(UTC) >= self.next_run
            await _guard(self.run(dry_run=False) if due else self.build_rollups())


async def _guard(work: Awaitable[Any]) -> None:
    # A failing scheduled run is logged; the schedule keeps going.
    try:
        await work
    except RunInProgress:
        pass
    except Exception:
        _LOGGER.exception("Scheduled retention work failed")


def _save(conn: sqlite3.Connection, body: dict[str, Any]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO retention_policies (name, body, updated_at) VALUES (?, ?, ?)",
        (body["name"], orjson.dumps(body).decode(), times.now_us()),
    )


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    """A stored body back into request shape (drops output-only keys)."""
    keep = {"name", "match_type", "pattern", "description", *TIERS}
    return {k: v for k, v in data.items() if k in keep and not (k in TIERS and v is None)}


def _tier(rows: int, lo: int | None, hi: int | None, unit_us: int) -> dict[str, Any]:
    return {"rows": rows, "bytes": 0,
            "oldest": None if lo is None else us_to_iso(lo * unit_us),
            "newest": None if hi is None else us_to_iso(hi * unit_us)}  # fmt: skip
