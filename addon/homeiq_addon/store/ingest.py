"""Writing a batch: events, batch id, dirty hours and counters in one transaction.

Everything CPU-heavy about a batch (JSON parsing, validation, building rows) runs here,
on the writer thread, not on the event loop: two threads both busy in Python would
fight over the GIL, and the writer, which releases it for every SQLite step, would lose
(up to the 5 ms switch interval per row). The event loop only moves bytes.

Dimension ids are cached in memory, so the common event costs dictionary lookups, not
SELECTs; the store clears the caches whenever a transaction (or savepoint) rolls back.
Stats counters are summed over every batch of a group commit and written once, just
before COMMIT (``before_commit``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import re
import sqlite3
import time
from typing import Any, Final

import orjson

from ..schema import BatchInvalid, check_batch, parse_time_us
from .codec import TO_BASE32 as _TO_BASE32, ULID_RE as _ULID_RE, encode_context
from .recent import RecentCounts
from .tables import (
    CAUSE_KEYS as _CAUSE_KEYS,
    REGISTRY_KEYS,
    SNAP_KEYS as _SNAP_KEYS,
    Key,
    attributes_id,
    flush_counts,
    lookup,
)

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
# Number-like states (sensor readings, timestamps) rarely repeat: stored as text, not interned.
_NUMBERISH: Final = re.compile(r"[-+.0-9]")
_INSERT: Final = (
    "INSERT INTO events (time_fired, event_type_id, entity_ref, domain_ref, origin,"
    " context_id, context_user_ref, context_parent_id, state, old_state, numeric_value,"
    " last_changed_ago, prev_state_seconds, attributes_ref, data, registry_ref, cause_ref,"
    " snapshot_ref) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass(slots=True)
class Ack:
    """What the add-on answers for an accepted (or already accepted) batch."""

    batch_id: str
    accepted: int
    duplicate: bool
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "accepted": self.accepted, "duplicate": self.duplicate}


@dataclass(slots=True)
class Rejected:
    """A batch refused for its content; nothing of it was written."""

    status: int
    code: str
    message: str


def record_reject(conn: sqlite3.Connection, now: float | None = None) -> None:
    minute = int((time.time() if now is None else now) // 60)
    conn.execute(
        "INSERT INTO batch_rejects VALUES (?, 1) ON CONFLICT (minute) DO UPDATE SET n = n + 1",
        (minute,),
    )


class Ingestor:
    """Turns batches into rows; one per store, used on the writer thread only."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, Any], int] = {}
        self._attrs: dict[bytes, int] = {}
        self._combos: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self._pending: Counter[Key] = Counter()  # jobs done in the open transaction
        self._job: Counter[Key] = Counter()  # the running job's, until its savepoint ends
        self.recent = RecentCounts()

    # --- store transaction hooks (writer thread) -------------------------------------

    def clear_caches(self) -> None:
        self._ids.clear()
        self._attrs.clear()
        self._combos.clear()

    def job_done(self, ok: bool) -> None:
        if ok:
            self._pending.update(self._job)
        self._job = Counter()

    def before_commit(self, conn: sqlite3.Connection) -> None:
        if self._pending:
            flush_counts(conn, self._pending)

    def after_commit(self) -> None:
        if self._pending:
            self.recent.add(self._pending)
            self._pending = Counter()

    def after_rollback(self) -> None:
        self._pending = Counter()
        self._job = Counter()

    # --- the batch -------------------------------------------------------------------

    def ingest_body(self, conn: sqlite3.Connection, body: bytes, started: float) -> Ack | Rejected:
        """Parse, validate and write one request body (call inside a transaction)."""
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

    def write_batch(
        self, conn: sqlite3.Connection, batch: dict[str, Any], started: float | None = None
    ) -> Ack:
        """Insert a validated batch unless its id was seen (call inside a transaction)."""
        batch_id: str = batch["batch_id"]
        seen = conn.execute("SELECT accepted FROM batches WHERE batch_id = ?", (batch_id,))
        hit = seen.fetchone()
        if hit is not None:
            return Ack(batch_id, int(hit[0]), True)
        events: list[dict[str, Any]] = batch["events"]
        keys: Counter[Key] = Counter()
        row = self._row
        rows = [row(conn, ev, keys) for ev in events]
        conn.executemany(_INSERT, rows)
        latency = 0.0 if started is None else (time.perf_counter() - started) * 1000
        source = batch["source"]
        conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                time.time_ns() // 1000,
                len(rows),
                latency,
                source["instance_id"],
                source["integration_version"],
            ),
        )
        # Counted for the transaction only once the job's savepoint is released (job_done).
        self._job.update(keys)
        return Ack(batch_id, len(rows), False, events)

    def _id(self, conn: sqlite3.Connection, table: str, value: Any) -> int:
        """Id of a dimension value (a string, or a tuple for registry/causes/snapshots)."""
        found = self._ids.get((table, value))
        if found is None:
            found = lookup(conn, table, value)
            if len(self._ids) > _CACHE_LIMIT:
                self._ids.clear()
            self._ids[(table, value)] = found
        return found

    def _attributes(self, conn: sqlite3.Connection, attrs: dict[str, Any]) -> int:
        # Unsorted dump as the cache key: the same integration sends keys in the same order;
        # a different order only costs a lookup of the canonical (sorted) form below.
        quick = orjson.dumps(attrs)
        found = self._attrs.get(quick)
        if found is None:
            found = attributes_id(conn, orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS))
            if len(self._attrs) > _CACHE_LIMIT:
                self._attrs.clear()
            self._attrs[quick] = found
        return found

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

    def _row(
        self, conn: sqlite3.Connection, ev: dict[str, Any], keys: Counter[Key]
    ) -> tuple[Any, ...]:
        # The hot loop of ingest: plain dict lookups, no calls on the common path.
        get = ev.get
        ids = self._ids
        time_fired = ev["time_fired"]
        t = parse_time_us(time_fired)
        assert t is not None  # validated before
        event_type = ev["event_type"]
        type_id = ids.get(("event_types", event_type)) or self._id(conn, "event_types", event_type)
        entity_id = get("entity_id")
        entity = None if entity_id is None else (
            ids.get(("entities", entity_id)) or self._id(conn, "entities", entity_id)
        )  # fmt: skip
        domain = get("domain") or (None if entity_id is None else entity_id.partition(".")[0])
        domain_ref = None if domain is None else (
            ids.get(("strings", domain)) or self._id(conn, "strings", domain)
        )  # fmt: skip
        keys[(t // _US_PER_MIN, type_id, entity or 0, domain_ref or 0)] += 1
        # Registry, cause and snapshot fields repeat for an entity: one cached lookup.
        combo: tuple[Any, ...] = tuple(map(get, _COMBO_KEYS))
        try:
            refs = self._combos.get(combo)
        except TypeError:  # labels is a list: not hashable
            combo = (*combo[:_LABELS], tuple(combo[_LABELS]), *combo[_LABELS + 1 :])
            refs = self._combos.get(combo)
        if refs is None:
            refs = self._refs(conn, combo)
            if len(self._combos) > _CACHE_LIMIT:
                self._combos.clear()
            self._combos[combo] = refs
        context_id = ev["context_id"]
        if len(context_id) == 26 and _ULID_RE.match(context_id):
            context: bytes | str | None = int(context_id.translate(_TO_BASE32), 32).to_bytes(16)
        else:
            context = encode_context(context_id)
        user = get("context_user_id")
        state = get("state")
        if state is not None and not (state and _NUMBERISH.match(state)):
            state = ids.get(("strings", state)) or self._id(conn, "strings", state)
        old_state = get("old_state")
        if old_state is not None and not (old_state and _NUMBERISH.match(old_state)):
            old_state = ids.get(("strings", old_state)) or self._id(conn, "strings", old_state)
        last_changed = get("last_changed")
        numeric = get("numeric_value")
        prev = get("prev_state_seconds")
        attrs = get("attributes")
        data = get("data")
        parent = get("context_parent_id")
        return (
            t,
            type_id,
            entity,
            domain_ref,
            0 if ev["origin"] == "LOCAL" else 1,
            context,
            None if user is None else self._id(conn, "strings", user),
            None if parent is None else encode_context(parent),
            state,
            old_state,
            None if numeric is None else float(numeric),
            0 if last_changed == time_fired else _ago(t, last_changed),
            None if prev is None else float(prev),
            None if attrs is None else self._attributes(conn, attrs),
            None if data is None else orjson.dumps(data).decode(),
            *refs,
        )


def _ago(t: int, last_changed: str | None) -> int | None:
    if last_changed is None:
        return None
    changed = parse_time_us(last_changed)
    return None if changed is None else t - changed
