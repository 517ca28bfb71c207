"""The mirror: one task per enabled target, writing what the store committed, in order.

Each task reads the events after its target's cursor (``.outbox``, on a reader
connection), keeps those its filters take, writes their lines (``.writer``) and only
after the target acknowledged them commits the new cursor and its counters through
``Store.write``. So:

- An engine outage: the write is retried, backing off (Retry-After honoured), and the
  cursor waits. An add-on restart or a SIGKILL: the chunk in flight was not committed and
  is written again. Retries count once because a point is identified by its
  measurement, tags and timestamp (``.points``): InfluxDB overwrites it,
  VictoriaMetrics keeps one sample per series and millisecond when started with
  ``-dedup.minScrapeInterval=1ms``.
- An engine that lost points it had acknowledged (VictoriaMetrics SIGKILLed within
  seconds of the ack, ``.replay``): after an outage each cursor (events, backfill,
  rollups) goes back to the first chunk acknowledged in the minute before it began; the
  rollup change log keeps what such a replay needs.
- A backup restored: the cursors in hand belong to the replaced database, whose ids
  the new events reuse; a commit is dropped when a restore came between the load of
  the cursors and it, and the restored cursors are loaded.
- Lines the target refuses for their content (400) are set aside in ``mirror_refused``
  and counted; the rest of the chunk is written and the cursor moves on.
- Rollups (``send`` rollups or both) follow ``mirror_rollup_changes``, the log of every
  rollup row written (rollups are rewritten in place when late events arrive); a new
  target, or a backfill, first sends every stored rollup.

A target enabled on a store with history sends new events at once and, on a second
cursor beside the live one, the stored events from the first to the newest of that
moment: it is "backfilling" until then. Backfill chunks are smaller and each is followed
by a pause as long as it took, so live ingest keeps its latency (a probe: p95 of a
200-event ingest 8 ms without, 17 ms during a backfill; benchmarks/probe_mirror_backfill.py).
POST /api/v1/mirror/targets/{name}/backfill starts one again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from functools import partial
import logging
import sqlite3
import time
from typing import Any, Final

import orjson

from ..config import Config
from ..contract import MirrorStatus, MirrorTarget
from ..errors import Conflict, NotFound
from ..store.db import Store
from ..times import US_PER_HOUR, now_us, us_to_iso
from . import outbox
from .errors import AccessRefused, MirrorError
from .outbox import Chunk, Selection
from .replay import ReplayWindow
from .writer import Backoff, Reachable, Target, TargetWriter, WriteOutcome

_LOGGER = logging.getLogger(__name__)

LIVE_CHUNK: Final = 5000
BACKFILL_CHUNK: Final = 2000
ROLLUP_CHUNK: Final = 2000
# How often an idle target looks for new events.
POLL_S: Final = 0.2


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """A target as the options configure it."""

    target: Target
    enabled: bool
    events: bool
    rollups: bool
    strings: bool
    selection: Selection

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TargetSettings:
        return cls(
            target=Target(
                name=options["name"],
                url=options["url"],
                token=options["token"],
                org=options["org"],
                bucket=options["bucket"],
                verify_ssl=options["verify_ssl"],
            ),
            enabled=options["enabled"],
            events=options["send"] in ("events", "both"),
            rollups=options["send"] in ("rollups", "both"),
            strings=options["string_fields"],
            selection=Selection.from_options(options),
        )


type RollupPosition = tuple[int, str | None]
"""Where the rollups stand: the change received up to, and a backfill's scan position."""


def _rollup_order(position: RollupPosition) -> tuple[Any, ...]:
    """Positions in the order a target passes them: a backfill's scan (hours, then
    days) runs at a fixed change id, whose changes follow when it ends."""
    change, scan = position
    if scan is None:
        return (change, 1)
    period, entity_ref, day = orjson.loads(scan)  # outbox.read_rollup_scan's key order
    return (change, 0, period == "day", entity_ref, day)


@dataclass(slots=True)
class _Cursor:
    """Where the live events, or a backfill, stand: the last event id the target has
    (None: no backfill runs), the backfill's end, and the acknowledgements of the last
    minute (``.replay``)."""

    backfill: bool
    position: int | None = 0
    until: int | None = None
    replay: ReplayWindow[int] = field(default_factory=ReplayWindow)
    # Chunks from below this were written before an outage: not counted twice.
    replay_until: int = 0

    def advance(self, first: int, to: int) -> None:
        self.replay.acknowledged(first)
        if self.backfill and self.until is not None and to >= self.until:
            self.position = self.until = None
        else:
            self.position = to


class TargetRunner:
    """One enabled target's task: its cursor in memory, committed after each write."""

    def __init__(
        self,
        store: Store,
        settings: TargetSettings,
        sync: Callable[..., None],
        rollups_kept_after: Callable[[], int | None],
    ) -> None:
        self.store = store
        self.settings = settings
        self._sync = sync
        self._rollups_kept_after = rollups_kept_after
        self.name = settings.target.name
        self.failure: MirrorError | None = None
        self._outage_started: float | None = None
        self._live = _Cursor(backfill=False)
        self._history = _Cursor(backfill=True)
        self._backfill = asyncio.Event()
        self._backfill_started: list[asyncio.Future[None]] = []
        self._replacements = -1
        self._rollup_cursor = 0
        self._rollup_scan: str | None = None
        self._rollup_replay: ReplayWindow[RollupPosition] = ReplayWindow()
        self._rollup_replay_until: RollupPosition | None = None
        self._rollup_rewind: RollupPosition | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._rewinds: list[tuple[_Cursor, int]] = []

    def rollup_changes_needed_after(self) -> int | None:
        """The change id a replay of this target's rollups could go back to: the log
        keeps the changes after it (None: no rollup was acknowledged in the window)."""
        oldest = self._rollup_replay.oldest()
        return None if oldest is None else oldest[0]

    @property
    def backfilling(self) -> bool:
        return self._history.position is not None or self._rollup_scan is not None

    async def request_backfill(self) -> None:
        """Send every stored event (and rollup) again; returns once that is committed."""
        started = asyncio.get_running_loop().create_future()
        self._backfill_started.append(started)
        self._backfill.set()
        await started

    async def run(self) -> None:
        async with TargetWriter(self.settings.target) as writer:
            while True:
                if self._backfill.is_set():
                    self._backfill.clear()
                    while not await self._commit(partial(outbox.start_backfill, name=self.name)):
                        await self._load()  # a restore came first: start in the restored data
                    await self._load()
                    for started in self._backfill_started:
                        if not started.done():
                            started.set_result(None)
                    self._backfill_started.clear()
                if self.store.replacements != self._replacements:
                    await self._load()
                sent = False
                if self.settings.events:
                    sent = await self._events(writer, self._live) or sent
                if self.settings.rollups:
                    sent = await self._rollups(writer) or sent
                began = time.perf_counter()
                backfilled = False
                if self.settings.events and self._history.position is not None:
                    backfilled = await self._events(writer, self._history)
                if backfilled:
                    # As long again for everything else: live ingest keeps its pace.
                    await asyncio.sleep(time.perf_counter() - began)
                elif not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._backfill.wait(), POLL_S)

    async def _load(self) -> None:
        """The cursors as committed (at start, and after a backup was restored)."""
        kept_after = self._rollups_kept_after()

        def load(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
            # A restored backup may lack the target, or hold it as an older add-on left it.
            self._sync(conn, rollups_kept_after=kept_after)
            return self.store.replacements, outbox.reload(conn, self.name)

        self._replacements, row = await self.store.write(load)
        self._live = _Cursor(backfill=False, position=row["event_cursor"])
        self._history = _Cursor(
            backfill=True, position=row["backfill_cursor"], until=row["backfill_until"]
        )
        self._rollup_cursor = row["rollup_cursor"]
        self._rollup_scan = row["rollup_scan"]
        # Positions acknowledged in another database mean nothing in this one.
        self._rollup_replay.clear()
        self._rollup_replay_until = self._rollup_rewind = None
        self._rewinds.clear()

    async def _commit(self, job: Callable[[sqlite3.Connection], None]) -> bool:
        """Commit ``job`` unless a backup was restored since the cursors were loaded:
        False then, and nothing is committed. A cursor of the replaced database, taken
        into the restored one, would pass the new events that reuse its ids (the loop
        loads the restored cursors next)."""
        loaded = self._replacements

        def unless_replaced(conn: sqlite3.Connection) -> bool:
            # On the writer thread, where a restore also runs: no restore in between.
            if self.store.replacements != loaded:
                return False
            job(conn)
            return True

        committed: bool = await self.store.write(unless_replaced)
        return committed

    async def _events(self, writer: TargetWriter, cursor: _Cursor) -> bool:
        """One chunk of events after ``cursor``; False when there was none."""
        first = cursor.position
        assert first is not None
        chunk: Chunk = await self.store.read(
            partial(outbox.read_events, after=first, upto=cursor.until,
                    limit=BACKFILL_CHUNK if cursor.backfill else LIVE_CHUNK,
                    selection=self.settings.selection, strings=self.settings.strings)
        )  # fmt: skip
        if not chunk.read and not cursor.backfill:
            return False
        end = chunk.next_cursor if chunk.read else (cursor.until or first)
        outcome = await self._deliver(writer, chunk.lines)
        counted = outcome.written if first >= cursor.replay_until else 0
        if not await self._commit(
            partial(outbox.commit_events, name=self.name, backfill=cursor.backfill,
                    cursor=end, written=counted, refused=outcome.refused, now_us=now_us())
        ):  # fmt: skip
            return True
        cursor.advance(first, end)
        await self._replay()
        return True

    def _outage_over(self) -> None:
        """The target answers again after an outage: each cursor goes back to the first
        chunk acknowledged in the minute before it began (``.replay``), once the chunk
        in hand is committed."""
        if self._outage_started is None:
            return
        outage_started, self._outage_started = self._outage_started, None
        for cursor in (self._live, self._history):
            back_to = cursor.replay.replay_from(outage_started)
            if back_to is not None:
                self._rewinds.append((cursor, back_to))
        self._rollup_rewind = self._rollup_replay.replay_from(outage_started)

    async def _replay(self) -> None:
        rewinds, self._rewinds = self._rewinds, []
        for cursor, back_to in rewinds:
            if cursor.position is None or back_to >= cursor.position:
                continue
            _LOGGER.info("%s: writing again from event %s after an outage", self.name, back_to)
            if not await self._commit(
                partial(outbox.rewind, name=self.name, backfill=cursor.backfill, cursor=back_to)
            ):
                return
            cursor.replay_until, cursor.position = cursor.position, back_to
        rollups_back_to, self._rollup_rewind = self._rollup_rewind, None
        here = (self._rollup_cursor, self._rollup_scan)
        if rollups_back_to is None or _rollup_order(rollups_back_to) >= _rollup_order(here):
            return
        _LOGGER.info("%s: writing the rollups again after an outage", self.name)
        change, scan = rollups_back_to
        if await self._commit(
            partial(outbox.rewind_rollups, name=self.name, cursor=change, scan=scan)
        ):
            self._rollup_replay_until = here
            self._rollup_cursor, self._rollup_scan = rollups_back_to

    async def _rollups(self, writer: TargetWriter) -> bool:
        selection = self.settings.selection
        chunk: Chunk
        if self._rollup_scan is not None:
            chunk = await self.store.read(
                partial(outbox.read_rollup_scan, scan=self._rollup_scan, limit=ROLLUP_CHUNK,
                        selection=selection)
            )  # fmt: skip
            chunk.next_cursor = self._rollup_cursor
        else:
            chunk = await self.store.read(
                partial(outbox.read_rollup_changes, after=self._rollup_cursor,
                        limit=ROLLUP_CHUNK, selection=selection)
            )  # fmt: skip
            if not chunk.read:
                return False
        first = (self._rollup_cursor, self._rollup_scan)
        outcome = await self._deliver(writer, chunk.lines)
        # The changes of this chunk too: a replay may soon need them.
        others = self._rollups_kept_after()
        kept_after = first[0] if others is None else min(first[0], others)
        until = self._rollup_replay_until
        replayed = until is not None and _rollup_order(first) < _rollup_order(until)
        if not await self._commit(
            partial(outbox.commit_rollups, name=self.name, cursor=chunk.next_cursor,
                    scan=chunk.next_scan, written=0 if replayed else outcome.written,
                    refused=outcome.refused, now_us=now_us(),
                    kept_after=kept_after)
        ):  # fmt: skip
            return True
        self._rollup_replay.acknowledged(first)
        self._rollup_cursor, self._rollup_scan = chunk.next_cursor, chunk.next_scan
        await self._replay()
        return True

    async def _deliver(self, writer: TargetWriter, lines: list[str]) -> WriteOutcome:
        """Write until the target has taken or refused every line."""
        if not lines:
            return WriteOutcome()
        outcome = await writer.deliver(lines, Backoff(), self._failed)
        self._outage_over()
        if self.failure is not None:
            # The commit that follows clears the stored last error.
            _LOGGER.info("%s: writing again", self.name)
            self.failure = None
        return outcome

    def _failed(self, error: MirrorError) -> None:
        if self.failure is None or self.failure.message != error.message:
            log = _LOGGER.error if isinstance(error, AccessRefused) else _LOGGER.warning
            log("%s", error.message)
            self._persist_error(error.message)
        if self._outage_started is None and not isinstance(error, AccessRefused):
            self._outage_started = time.monotonic()
        self.failure = error

    def _persist_error(self, message: str) -> None:
        task = asyncio.create_task(
            self.store.write(partial(outbox.record_error, name=self.name, message=message))
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def status(self) -> MirrorStatus:
        if isinstance(self.failure, AccessRefused):
            return "auth_failed"
        if self.failure is not None:
            return "unreachable"
        return "backfilling" if self.backfilling else "ok"


class Mirror:
    """Every configured target: the tasks of the enabled ones, and what they report."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.settings = {
            s.target.name: s for s in map(TargetSettings.from_options, config.mirror_targets)
        }
        self.max_lag_us = config.mirror_max_lag_hours * US_PER_HOUR
        configured = {name: (s.enabled, s.events, s.rollups) for name, s in self.settings.items()}
        self._sync = partial(outbox.sync_targets, configured=configured, max_lag_us=self.max_lag_us)
        self.runners = {
            name: TargetRunner(store, s, self._sync, self.rollup_changes_needed_after)
            for name, s in self.settings.items()
            if s.enabled
        }
        self._tasks: list[asyncio.Task[None]] = []

    def rollup_changes_needed_after(self) -> int | None:
        """The rollup changes after this id may be written again (``.replay``): the
        change log keeps them, beside those some target has not received."""
        needed = [
            after
            for runner in self.runners.values()
            if (after := runner.rollup_changes_needed_after()) is not None
        ]
        return min(needed) if needed else None

    async def start(self) -> None:
        await self.store.write(self._sync)
        for name, runner in self.runners.items():
            task = asyncio.create_task(self._guarded(runner), name=f"homeiq-mirror-{name}")
            self._tasks.append(task)

    async def _guarded(self, runner: TargetRunner) -> None:
        while True:
            try:
                await runner.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug or a closed store must not end mirroring for good: try again.
                _LOGGER.exception("%s: mirroring failed; starting over in 30 s", runner.name)
                await asyncio.sleep(30)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def report(self) -> list[MirrorTarget]:
        """Every configured target, in the options' order (never its token)."""
        if not self.settings:
            return []
        now = now_us()
        found = await self.store.read(partial(outbox.progress, now_us=now))
        targets = []
        for name, settings in self.settings.items():
            progress = found.get(name)
            if progress is None:  # a backup without it was just restored
                continue
            runner = self.runners.get(name)
            row = progress.row
            status: MirrorStatus = "disabled" if runner is None else runner.status()
            oldest = progress.oldest_unsent_us
            targets.append(
                MirrorTarget(
                    name=name,
                    status=status,
                    lag_events=progress.lag_events,
                    lag_seconds=0.0 if oldest is None else round(max(now - oldest, 0) / 1e6, 3),
                    points_written=row["points_written"],
                    points_refused=row["points_refused"],
                    last_error=row["last_error"]
                    if runner is None or runner.failure is None
                    else runner.failure.message,
                    last_success=None
                    if row["last_success_us"] is None
                    else us_to_iso(row["last_success_us"]),
                    retention_waits=progress.retention_waits and settings.enabled,
                )
            )
        return targets

    def configured(self, name: str) -> TargetSettings:
        """The target's settings; NotFound when the options name no such target."""
        settings = self.settings.get(name)
        if settings is None:
            raise NotFound(f"no mirror target named {name!r}")
        return settings

    async def test(self, name: str) -> Reachable:
        """A write of no points to the target (enabled or not): what it answered."""
        async with TargetWriter(self.configured(name).target) as writer:
            return await writer.test_connection()

    async def backfill(self, name: str) -> MirrorTarget:
        """Start the target again from the first event; its report once that is committed."""
        self.configured(name)
        runner = self.runners.get(name)
        if runner is None:
            raise Conflict(f"mirror target {name!r} is disabled; enable it in the options")
        await runner.request_backfill()
        return next(target for target in await self.report() if target.name == name)
