"""The SQLite store: one writer thread, a few reader connections.

All writes (ingest, retention deletes, rollups, backups) go through ``Store.write`` and
run, in submission order, on the one writer connection in its own thread, so nothing
ever waits on SQLite's write lock and ingest is never blocked by a second writer.

Group commit: when several write jobs are queued the writer runs them in ONE
transaction, each inside its own SAVEPOINT (a failing job rolls back only itself), and
resolves every job's future only after COMMIT returned. Committing is the expensive part
of a small write (the WAL is synced on each commit), so under load the cost is shared.

The store owns what follows its transactions: the lookup tables' ids (``ids``, reset
after any rollback, a restore or a cleanup of rows) and the event counts (``counts``,
written before COMMIT, kept in memory after it). The ingest hands it rows and their
per-minute keys (``insert_events``); nothing in the store calls back up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
import contextlib
import logging
from pathlib import Path
import queue
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from ..errors import Unavailable
from . import deferred_index
from .compact_events import (
    COMPUTED_COLUMNS,
    TIME_EPOCH_US,
    encode_event_kind,
    encode_numeric_value,
    encode_prev_state_seconds,
)
from .connection import BUSY_TIMEOUT_MS, connect
from .hour_sums import NONE, UNKNOWN, HourSums
from .ids import Ids
from .memory_counts import EventCounts
from .migrations import migrate

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Iterable

    from .memory_counts import Key, Position

_LOGGER = logging.getLogger(__name__)

DB_NAME: Final = "homeiq.db"
# A merged transaction stops taking more jobs past this many (keeps latency bounded).
_MAX_JOBS_PER_TX: Final = 64
_READERS: Final = 3
WRITER_CACHE_MB: Final = 2
# The WAL keeps the size it grew to (a catch-up after an outage leaves tens of MB beside
# a small database). Once the writer has been idle this long after writing, and the WAL
# is bigger than WAL_TRUNCATE_BYTES, it copies the WAL back and truncates it to zero.
WAL_IDLE_S: Final = 2.0
WAL_TRUNCATE_BYTES: Final = 1024 * 1024
# A backstop for a writer that is never idle: a reset WAL is cut back to this size.
_JOURNAL_SIZE_LIMIT: Final = 4 * 1024 * 1024

type WriteFn[T] = Callable[[sqlite3.Connection], T]

# An event row's columns, in the order of the tuples ``insert_events`` takes.
EVENT_COLUMNS: Final = (
    "time_fired", "event_type_id", "entity_ref", "domain_ref", "origin", "context_id",
    "context_user_ref", "context_parent_id", "state", "old_state", "numeric_value",
    "last_changed_ago", "prev_state_seconds", "attributes_ref", "data", "registry_ref",
    "cause_ref", "snapshot_ref",
)  # fmt: skip
_AT: Final = {c: f"?{i}" for i, c in enumerate(EVENT_COLUMNS, 1)}  # a row's value, in SQL
# The stored columns (compact_events.py; the others are computed from them), each with
# the SQL of its value.
_STORED: Final = {
    "time_since_2026": f"{_AT['time_fired']} - {TIME_EPOCH_US}",
    "event_kind": encode_event_kind(_AT["event_type_id"], _AT["origin"], _AT["context_user_ref"]),
    **{c: _AT[c] for c in EVENT_COLUMNS if c not in COMPUTED_COLUMNS},
    "numeric_value": encode_numeric_value(_AT["state"], _AT["numeric_value"]),
    "prev_state_seconds": encode_prev_state_seconds(_AT["prev_state_seconds"]),
}
INSERT_EVENT: Final = (
    f"INSERT INTO events ({', '.join(_STORED)}) VALUES ({', '.join(_STORED.values())})"
)


class StoreClosed(Unavailable):
    """The store was closed; no more reads or writes (503 to a request still going)."""


class _Job:
    __slots__ = ("fn", "future", "transaction")

    def __init__(self, fn: WriteFn[Any], transaction: bool) -> None:
        self.fn = fn
        self.transaction = transaction
        self.future: Future[Any] = Future()


class Store:
    """The add-on's database. Create with ``Store.open`` (runs migrations)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: deque[_Job | None] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self.ids = Ids()
        self.counts = EventCounts()
        self.hour_sums = HourSums()  # the writer notes its index runs and restores there
        # Long jobs that hold row ids across steps check this to notice a restore.
        self.replacements = 0
        self._writer = connect(path)
        # Must precede the first table of a new file; lets retention hand space back
        # with PRAGMA incremental_vacuum (a no-op on an existing file).
        self._writer.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._writer.execute("PRAGMA journal_mode = WAL")
        # Checkpoints happen in the writer thread as part of a commit; bigger ones, less often.
        self._writer.execute("PRAGMA wal_autocheckpoint = 4000")
        self._writer.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        self._wal_written = True  # look at the WAL once the writer is first idle
        self.schema_version = migrate(self._writer)
        # Migrations rewrite and sort whole tables (SQLite's sorts take the page cache's
        # size as their memory): they had the default. From here on the writer mostly
        # appends (events, then each entity's postings in bulk), and the pages it misses
        # come from the OS's cache: 2 MB of page cache used as much CPU per event as 8 when
        # ingesting 200,000 events into a store of a million (4 alternating rounds; 32 had
        # saved none over 8 either), and 8 cost 7 MB more RSS under load.
        self._writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_MB * 1000}")
        self.counts.last_hour.load(self._writer)
        # When the newest events must be indexed at the latest (deferred_index.py).
        self._index_due: float | None = None
        self._index_retry = 0.0  # after a failure, not again before this
        self._index_look = 0.0  # the next look at how many events wait
        self.indexing = True  # tests turn it off to read the unindexed tail
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        for _ in range(_READERS):
            self._readers.put(connect(path))
        self._thread = threading.Thread(target=self._run, name="homeiq-writer", daemon=True)
        self._thread.start()

    @classmethod
    async def open(cls, data_dir: Path) -> Store:
        return await asyncio.to_thread(cls.open_sync, data_dir)

    @classmethod
    def open_sync(cls, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(data_dir / DB_NAME)

    def size_bytes(self) -> int:
        """The store's size on disk: the database file and its write-ahead log.

        The one definition of "database size" (health, stats, the panel): committed
        events may still sit in the WAL, so the file alone would undercount them.
        """
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += self.path.with_name(self.path.name + suffix).stat().st_size
        return total

    async def write[T](self, fn: WriteFn[T], *, transaction: bool = True) -> T:
        """Run ``fn(conn)`` on the writer thread; committed when this returns.

        With ``transaction=False`` the job runs alone in autocommit mode (for statements
        that cannot run in a transaction, such as VACUUM INTO).
        """
        return await asyncio.wrap_future(self.submit(fn, transaction=transaction))

    def submit(self, fn: WriteFn[Any], *, transaction: bool = True) -> Future[Any]:
        """Queue a write from any thread; the future resolves after commit."""
        job = _Job(fn, transaction)
        with self._wakeup:
            if self._closed:
                raise StoreClosed("store is closed")
            self._jobs.append(job)
            self._wakeup.notify()
        return job.future

    async def read[T](self, fn: WriteFn[T]) -> T:
        """Run ``fn(conn)`` on a reader connection in a worker thread."""
        return await asyncio.to_thread(self.read_sync, fn)

    def read_sync[T](self, fn: WriteFn[T]) -> T:
        if self._closed:
            raise StoreClosed("store is closed")
        conn = self._readers.get()
        try:
            # One read transaction, so a multi-statement read sees one snapshot.
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        finally:
            self._readers.put(conn)

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        with self._wakeup:
            if self._closed:
                return
            self._closed = True
            self._jobs.append(None)
            self._wakeup.notify()
        self._thread.join()
        while not self._readers.empty():
            self._readers.get().close()

    # --- writer thread -----------------------------------------------------------------

    def _next_jobs(self) -> list[_Job | None]:
        """The next jobs to run; none if the writer sat idle while events wait indexing."""
        with self._wakeup:
            while not self._jobs:
                idle_after = self._idle_work_after()
                if idle_after is None:
                    self._wakeup.wait()
                elif not self._wakeup.wait(idle_after):
                    return []
            first = self._jobs.popleft()
            if first is None or not first.transaction:
                return [first]
            batch: list[_Job | None] = [first]
            while self._jobs and len(batch) < _MAX_JOBS_PER_TX:
                nxt = self._jobs[0]
                if nxt is None or not nxt.transaction:
                    break
                batch.append(self._jobs.popleft())
            return batch

    def _idle_work_after(self) -> float | None:
        """Seconds of idleness after which the writer has work of its own, if any."""
        waits = []
        if self._index_due is not None and self.indexing:
            waits.append(deferred_index.INDEX_AFTER_IDLE_S)
        if self._wal_written:
            waits.append(WAL_IDLE_S)
        return min(waits, default=None)

    def _run(self) -> None:
        conn = self._writer
        while True:
            jobs = self._next_jobs()
            if not jobs:
                self._index_new_events(conn, idle=True)
                self._truncate_wal(conn)
                continue
            if jobs[0] is None:
                # A clean stop leaves nothing to index for the next start.
                self._index_new_events(conn, idle=True)
                break
            if not jobs[0].transaction:
                self._run_alone(conn, jobs[0])
            else:
                self._run_group(conn, [j for j in jobs if j is not None])
            # The jobs hold their batches (bodies, decoded rows): not kept through the
            # indexing below and the wait for the next jobs.
            del jobs
            self._index_new_events(conn, idle=False)
            self._wal_written = True
        conn.close()

    def _truncate_wal(self, conn: sqlite3.Connection) -> None:
        """Idle after writing: give a big WAL's space back (see WAL_IDLE_S)."""
        if self._index_due is not None and self.indexing:
            return  # indexing first writes to the WAL again
        self._wal_written = False
        try:
            wal = self.path.with_name(self.path.name + "-wal").stat().st_size
        except FileNotFoundError:
            return
        if wal <= WAL_TRUNCATE_BYTES:
            return
        # A reader in the middle of a snapshot makes it busy: wait briefly, else next time.
        conn.execute("PRAGMA busy_timeout = 200")
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            _LOGGER.exception("truncating the write-ahead log failed")
            busy = 1
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if busy:
            self._wal_written = True

    def _index_new_events(self, conn: sqlite3.Connection, *, idle: bool) -> None:
        """Index the newest events when it is due (deferred_index.py)."""
        now = time.monotonic()
        if not self.indexing:
            return
        if self._index_due is None:
            # Events may have come: look when idle, or after the max age at the latest.
            self._index_due = now + deferred_index.INDEX_AFTER_MAX_AGE_S
        # Two queries per look; between commits they let the next job queue up behind
        # another (a retention step), so busy writers look only every so often.
        if now < self._index_retry or (not idle and now < self._index_look):
            return
        self._index_look = now + deferred_index.LOOK_EVERY_S
        try:
            behind = deferred_index.unindexed(conn)
            if not behind:
                self._index_due = None
            elif idle or behind >= deferred_index.INDEX_AFTER_ROWS or now >= self._index_due:
                self._index_now(conn)
        except sqlite3.Error:
            # Nothing is lost or miscounted: readers add the unindexed tail themselves.
            _LOGGER.exception("indexing the newest events failed; retrying in a minute")
            self._index_retry = now + 60

    def _index_now(self, conn: sqlite3.Connection) -> None:
        handed: list[Counter[Key] | None] = []

        def known(since: Position) -> Counter[Key] | None:
            handed.append(self.counts.unindexed.since(since))
            return handed[-1]

        position = deferred_index.index_new_events(conn, known)
        self._index_due = None
        if position is not None:
            self.counts.unindexed.indexed(position)
            # Which hours of the hourly counts the run wrote (hour_sums.py).
            counts = handed[0] if handed else None
            lowest = UNKNOWN if counts is None else min((k[0] // 60 for k in counts), default=NONE)
            self.hour_sums.indexed(position[1], lowest)

    def index_now(self) -> Future[None]:
        """Index the newest events now, whatever is due (for tests and tools)."""
        return self.submit(self._index_now, transaction=False)

    def _run_alone(self, conn: sqlite3.Connection, job: _Job) -> None:
        try:
            result = job.fn(conn)
            self.counts.job_done(True)
            self.counts.before_commit(conn)
            self.counts.after_commit()
        except BaseException as err:
            self._rolled_back()
            job.future.set_exception(err)
            return
        job.future.set_result(result)

    def _run_group(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        done: list[tuple[_Job, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            for job in jobs:
                job.future.set_exception(err)
            return
        for job in jobs:
            conn.execute("SAVEPOINT job")
            try:
                result = job.fn(conn)
            except BaseException as err:
                # Only this job's work is undone; the others in the group still commit.
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                self.counts.job_done(False)
                self.forget_row_ids()
                job.future.set_exception(err)
                continue
            conn.execute("RELEASE job")
            self.counts.job_done(True)
            done.append((job, result))
        try:
            self.counts.before_commit(conn)
            conn.execute("COMMIT")
        except BaseException as err:
            _LOGGER.exception("commit failed")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._rolled_back()
            for job, _ in done:
                job.future.set_exception(err)
            return
        # Acknowledge only now: every result handed out below is committed.
        self.counts.after_commit()
        for job, result in done:
            job.future.set_result(result)

    def _rolled_back(self) -> None:
        self.counts.after_rollback()
        self.forget_row_ids()

    def content_replacing(self) -> None:
        """The whole database is about to be swapped for another (a restore); call on the
        writer, then ``content_replaced`` whether the swap succeeded or not."""
        self.hour_sums.replacing()

    def content_replaced(self, conn: sqlite3.Connection) -> None:
        """The whole database was swapped for another (a restore); call on the writer."""
        self.replacements += 1
        self.forget_row_ids()
        self.hour_sums.replaced()
        # The 15m/1h stats count from memory: recount them from the restored events.
        self.counts.last_hour.load(conn)

    def insert_events(
        self, conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]], keys: Counter[Key]
    ) -> None:
        """Insert event rows (``EVENT_COLUMNS``) in a write job, with their counts by
        minute key; the counts are written when the job's transaction commits."""
        conn.executemany(INSERT_EVENT, rows)
        self.counts.add(keys)

    def forget_row_ids(self) -> None:
        """Drop every cache of row ids: rows were rolled back, deleted or replaced.

        Call on the writer thread (in a write job), so no later job sees a stale id.
        """
        self.ids.reset()
        self.counts.unindexed.forget()
