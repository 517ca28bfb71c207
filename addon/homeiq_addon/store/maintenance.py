"""Housekeeping of the store's own bookkeeping tables (not of events: that is retention).

Batch ids are kept 8 days (dedup of retried batches, and the 7-day stats), as are the
per-minute totals and rejected-batch counts; hourly breakdowns likewise, since /stats
looks back 7 days at most. Deletes go in small write jobs so ingest never waits long.
"""

from __future__ import annotations

import asyncio
from functools import partial
import logging
import sqlite3
import time
from typing import Final

from ..times import US_PER_SECOND
from .db import Store, StoreClosed

_LOGGER = logging.getLogger(__name__)
KEEP_SECONDS: Final = 8 * 86_400
INTERVAL_S: Final = 600.0
_CHUNK: Final = 5000
# (table, time column, units per second of that column)
_TABLES: Final = (
    ("batches", "received_us", US_PER_SECOND),
    ("batch_rejects", "minute", 1 / 60),
    ("stat_minute", "minute", 1 / 60),
    ("stat_hour_key", "hour", 1 / 3600),
)


def _prune_chunk(conn: sqlite3.Connection, table: str, column: str, before: int) -> int:
    key = "batch_id" if table == "batches" else ("rowid" if table != "stat_hour_key" else None)
    if key is None:
        # WITHOUT ROWID, keyed by hour first: a range delete is already index-bounded.
        return conn.execute(
            f"DELETE FROM {table} WHERE {column} IN (SELECT DISTINCT {column} FROM {table}"
            f" WHERE {column} < ? LIMIT 2)",
            (before,),
        ).rowcount
    return conn.execute(
        f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {column} < ?"
        f" LIMIT {_CHUNK})",
        (before,),
    ).rowcount


async def prune(store: Store, now: float | None = None) -> int:
    """Delete bookkeeping rows older than KEEP_SECONDS; return how many."""
    horizon = (time.time() if now is None else now) - KEEP_SECONDS
    total = 0
    for table, column, per_second in _TABLES:
        before = int(horizon * per_second)
        while True:
            n = await store.write(partial(_prune_chunk, table=table, column=column, before=before))
            total += n
            if n == 0:
                break
    return total


async def keep_pruning(store: Store) -> None:
    """Prune every INTERVAL_S until the store closes (a background task of app.py)."""
    while True:
        await asyncio.sleep(INTERVAL_S)
        try:
            removed = await prune(store)
        except StoreClosed:
            return
        except sqlite3.Error:
            _LOGGER.exception("pruning bookkeeping tables failed; will retry")
            continue
        if removed:
            _LOGGER.debug("pruned %d bookkeeping rows", removed)
