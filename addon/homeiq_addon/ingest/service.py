"""Writing a batch: events, batch id, dirty hours and counters in one transaction.

Everything CPU-heavy about a batch (JSON parsing, validation, building rows) runs on
the writer thread, not on the event loop: two threads both busy in Python would fight
over the GIL, and the writer, which releases it for every SQLite step, would lose (up
to the switch interval per row). The event loop only moves bytes. Big bodies are the
exception: a worker process decodes them and builds their rows (prepare.py, worker.py),
and the writer only fills in the ids the worker could not know (``ingest_prepared``).

A body first goes through the fast path: msgspec decodes and validates it in C into
structs (``wire.decode_fast``) and ``rows.build_rows`` reads them; anything it is unsure
of goes the schema's way (orjson, ``check_batch``, ``rows.dict_row``), which stores the
same rows or answers the error with its field path.

Dimension ids are cached in memory, so the common event costs dictionary lookups, not
SELECTs; the store clears the caches whenever a transaction (or savepoint) rolls back.
Stats counters are summed over every batch of a group commit and written once, just
before COMMIT (``before_commit``).
"""

from __future__ import annotations

from collections import Counter
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..store.ids import (
    CAUSE_KEYS as _CAUSE_KEYS,
    REGISTRY_KEYS,
    SNAP_KEYS as _SNAP_KEYS,
    Key,
    attributes_id,
    flush_counts,
    lookup,
)
from ..store.memory_counts import RecentCounts, UnsettledCounts
from .acks import Ack, Rejected, record_reject
from .prepare import fill_placeholders
from .rows import StoreDims, build_rows, dict_row
from .schema import BatchInvalid, check_batch
from .wire import Decoded, decode_fast

if TYPE_CHECKING:
    from .prepare import Learned, Prepared

_US_PER_MIN: Final = 60_000_000
# Caches are dropped wholesale past this size: cheap, and keeps the RSS bounded when
# attribute sets or states never repeat.
_CACHE_LIMIT: Final = 100_000
_LABELS: Final = REGISTRY_KEYS.index("labels")
_COMBO_KEYS: Final = (*REGISTRY_KEYS, *_CAUSE_KEYS, *_SNAP_KEYS)
_N_REG: Final = len(REGISTRY_KEYS)
_NO_REGISTRY: Final = (None,) * len(REGISTRY_KEYS)
_NO_CAUSE: Final = (None,) * 3
_NO_SNAP: Final = (None,) * 4
_INSERT: Final = (
    "INSERT INTO events (time_fired, event_type_id, entity_ref, domain_ref, origin,"
    " context_id, context_user_ref, context_parent_id, state, old_state, numeric_value,"
    " last_changed_ago, prev_state_seconds, attributes_ref, data, registry_ref, cause_ref,"
    " snapshot_ref) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


class Ingestor:
    """Turns batches into rows; one per store, used on the writer thread only."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, Any], int] = {}
        self._attrs: dict[bytes, int] = {}
        self.combos: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        # Ids of event types, entity ids and strings: one dict per table, no tuple keys.
        self.text_ids: tuple[dict[Any, int], dict[Any, int], dict[Any, int]] = ({}, {}, {})
        self._pending: Counter[Key] = Counter()  # jobs done in the open transaction
        self._job: Counter[Key] = Counter()  # the running job's, until its savepoint ends
        self.recent = RecentCounts()
        self.unsettled = UnsettledCounts()
        # Ids the decode worker may hold are valid within one epoch (prepare.py); ids
        # found for its placeholders go to it once committed.
        self.epoch = 0
        self._learned_lock = threading.Lock()
        self._learned: list[Learned] = []
        self._tx_learned: list[Learned] = []
        self._job_learned: list[Learned] = []

    # --- store transaction hooks (writer thread) -------------------------------------

    def clear_caches(self) -> None:
        self._ids.clear()
        self._attrs.clear()
        self.combos.clear()
        for cache in self.text_ids:
            cache.clear()
        with self._learned_lock:
            self.epoch += 1
            self._learned = []
        self.unsettled.forget()

    def job_done(self, ok: bool) -> None:
        if ok:
            self._pending.update(self._job)
            self._tx_learned += self._job_learned
        self._job = Counter()
        self._job_learned = []

    def before_commit(self, conn: sqlite3.Connection) -> None:
        if self._pending:
            flush_counts(conn, self._pending)

    def after_commit(self) -> None:
        if self._pending:
            self.recent.add(self._pending)
            self.unsettled.add(self._pending)
            self._pending = Counter()
        if self._tx_learned:
            with self._learned_lock:
                self._learned += self._tx_learned
            self._tx_learned = []

    def after_rollback(self) -> None:
        self._pending = Counter()
        self._job = Counter()
        self._tx_learned = []
        self._job_learned = []

    def settled(self, position: tuple[int, int]) -> None:
        self.unsettled.settled(position)

    def unsettled_since(self, position: tuple[int, int]) -> Counter[Key] | None:
        return self.unsettled.since(position)

    def take_learned(self) -> tuple[int, list[Learned]]:
        """(epoch, committed ids the worker has not been told); call from any thread."""
        with self._learned_lock:
            learned, self._learned = self._learned, []
            return self.epoch, learned

    # --- the batch -------------------------------------------------------------------

    def ingest_body(self, conn: sqlite3.Connection, body: bytes, started: float) -> Ack | Rejected:
        """Parse, validate and write one request body (call inside a transaction)."""
        decoded = decode_fast(body)
        if decoded is not None:
            ack = self._write_decoded(conn, decoded, body, started)
            if ack is not None:
                return ack
        # Not valid, or the fast path was unsure: voluptuous decides and names the error.
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            record_reject(conn)
            return Rejected(400, "invalid_json", f"body: malformed JSON: {err}")
        try:
            batch = check_batch(obj)
        except BatchInvalid as err:
            record_reject(conn)
            return Rejected(422, "invalid_batch", err.message)
        return self.write_batch(conn, batch, started)

    def ingest_prepared(
        self, conn: sqlite3.Connection, prepared: Prepared | None, body: bytes, started: float
    ) -> Ack | Rejected:
        """Write rows the decode worker built (call inside a transaction).

        Decoded here instead when the worker was unsure or its ids may be stale.
        """
        if prepared is None or prepared.epoch != self.epoch:
            return self.ingest_body(conn, body, started)
        batch_id = prepared.batch_id
        if (seen := self._seen(conn, batch_id)) is not None:
            return seen
        rows, keys = prepared.rows, prepared.keys
        if prepared.new:
            rows, keys, learned = fill_placeholders(self, conn, prepared)
            self._job_learned += learned
        self._write(conn, batch_id, rows, keys, started=started, source=prepared.source)
        return Ack(batch_id, len(rows), False, body=body)

    def write_batch(
        self, conn: sqlite3.Connection, batch: dict[str, Any], started: float | None = None
    ) -> Ack:
        """Insert a validated batch unless its id was seen (call inside a transaction)."""
        batch_id: str = batch["batch_id"]
        if (seen := self._seen(conn, batch_id)) is not None:
            return seen
        events: list[dict[str, Any]] = batch["events"]
        keys: Counter[Key] = Counter()
        rows = [dict_row(self, conn, ev, keys) for ev in events]
        src = batch["source"]
        source = (src["instance_id"], src["integration_version"])
        self._write(conn, batch_id, rows, keys, started=started, source=source)
        return Ack(batch_id, len(rows), False, events)

    def _write_decoded(
        self, conn: sqlite3.Connection, decoded: Decoded, body: bytes, started: float
    ) -> Ack | None:
        batch = decoded.batch
        batch_id = batch.batch_id
        if (seen := self._seen(conn, batch_id)) is not None:
            return seen
        keys: Counter[Key] = Counter()
        # Row building interns dimension values as it goes; should it fail on something
        # the slow path would judge differently (an integer orjson cannot write back), none
        # of that may stay.
        conn.execute("SAVEPOINT fast_rows")
        try:
            rows = build_rows(StoreDims(self, conn), decoded, keys)
        except (TypeError, ValueError, OverflowError):
            conn.execute("ROLLBACK TO fast_rows")
            conn.execute("RELEASE fast_rows")
            self.clear_caches()
            return None
        conn.execute("RELEASE fast_rows")
        source = (batch.source.instance_id, batch.source.integration_version)
        self._write(conn, batch_id, rows, keys, started=started, source=source)
        return Ack(batch_id, len(rows), False, body=body)

    @staticmethod
    def _seen(conn: sqlite3.Connection, batch_id: str) -> Ack | None:
        """The acknowledgement again, for a batch id already stored."""
        hit = conn.execute("SELECT accepted FROM batches WHERE batch_id = ?", (batch_id,))
        seen = hit.fetchone()
        return None if seen is None else Ack(batch_id, int(seen[0]), True)

    def _write(
        self,
        conn: sqlite3.Connection,
        batch_id: str,
        rows: list[tuple[Any, ...]],
        keys: Counter[Key],
        *,
        started: float | None,
        source: tuple[str, str],
    ) -> None:
        """The rows and the batch id; the counts wait for the job's savepoint (job_done)."""
        conn.executemany(_INSERT, rows)
        latency = 0.0 if started is None else (time.perf_counter() - started) * 1000
        conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            (batch_id, time.time_ns() // 1000, len(rows), latency, *source),
        )
        self._job.update(keys)

    def _id(self, conn: sqlite3.Connection, table: str, value: Any) -> int:
        """Id of a dimension value (a string, or a tuple for registry/causes/snapshots)."""
        found = self._ids.get((table, value))
        if found is None:
            found = lookup(conn, table, value)
            if len(self._ids) > _CACHE_LIMIT:
                self._ids.clear()
            self._ids[(table, value)] = found
        return found

    def attributes_ref(self, conn: sqlite3.Connection, attrs: dict[str, Any]) -> int:
        # Unsorted dump as the cache key: the same integration sends keys in the same order;
        # a different order only costs a lookup of the canonical (sorted) form below.
        quick = orjson.dumps(attrs)
        found = self._attrs.get(quick)
        if found is None:
            blob = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
            found = self.attributes_by_blob(conn, quick, blob)
        return found

    def attributes_by_blob(self, conn: sqlite3.Connection, quick: bytes, blob: bytes) -> int:
        """``attributes_ref`` for a set given as its quick (cache key) and sorted dumps."""
        found = self._attrs.get(quick)
        if found is None:
            found = attributes_id(conn, blob)
            if len(self._attrs) > _CACHE_LIMIT:
                self._attrs.clear()
            self._attrs[quick] = found
        return found

    def refs(self, conn: sqlite3.Connection, combo: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        """``_refs``, remembered in the combos cache."""
        refs = self._refs(conn, combo)
        if len(self.combos) > _CACHE_LIMIT:
            self.combos.clear()
        self.combos[combo] = refs
        return refs

    def _refs(self, conn: sqlite3.Connection, combo: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        """(registry_ref, cause_ref, snapshot_ref) for the combined tuple of those fields."""
        registry = combo[:_N_REG]
        if registry[_LABELS] is not None:
            # Hashable for the cache key; stored as JSON.
            registry = (*registry[:_LABELS], tuple(registry[_LABELS]), *registry[_LABELS + 1 :])
        cause = combo[_N_REG : _N_REG + 3]
        snap = combo[_N_REG + 3 :]
        return (
            None if registry == _NO_REGISTRY else self._id(conn, "registry", registry),
            None if cause == _NO_CAUSE else self._id(conn, "causes", cause),
            None if snap == _NO_SNAP else self._id(conn, "snapshots", snap),
        )
