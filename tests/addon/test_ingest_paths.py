"""The fast ingest path (msgspec structs) stores exactly what the voluptuous path stores."""

from __future__ import annotations

from pathlib import Path
import random
import sqlite3
from typing import Any

import orjson

from homeiq_addon.ingest.acks import Ack
from homeiq_addon.ingest.schema import check_batch
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.ingest.wire import decode_fast
from homeiq_addon.store.db import Store
from tests.addon.factory import batch, service_event, state_event

_TABLES = ("events", "strings", "entities", "event_types", "attributes", "registry", "causes",
           "snapshots", "stat_minute", "stat_hour_key", "dirty_hours", "counters")  # fmt: skip


def _varied(rng: random.Random, i: int) -> dict[str, Any]:
    """Events that take every branch of the row builders."""
    if rng.random() < 0.2:
        return service_event(i, data={"n": rng.randint(0, 3), "big": 2**63, "f": 0.1})
    ev = state_event(i, entity_id=f"{rng.choice(['sensor', 'light'])}.e_{rng.randint(0, 9)}")
    choices: dict[str, list[Any]] = {
        "state": ["on", "", "21.5", "-3", "unavailable", None],
        "old_state": ["off", "", "1e3", None],
        "domain": ["sensor", "", None],
        "context_id": [ev["context_id"], "0" * 32, "not-a-ulid", "01jdaw3m6v2x8t9q0rb4n5k7hc"],
        "context_user_id": [None, "user-1"],
        "context_parent_id": [None, ev["context_id"], "abc"],
        "last_changed": [ev["time_fired"], None, "2026-11-22T09:00:00.000001+01:00"],
        "last_reported": [ev["time_fired"], None, "2026-11-22T09:00:00.000001+01:00"],
        "labels": [None, [], ["a", "b"]],
        "numeric_value": [None, 3, 2.5],
        "prev_state_seconds": [None, 7, 0.5],
        "attributes": [None, {}, {"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}],
        "outdoor_temperature": [None, 4, 4.5],
        "origin": ["LOCAL", "REMOTE"],
        "cause": [None, "user", "automation"],
    }
    for key, values in choices.items():
        if rng.random() < 0.5:
            ev[key] = rng.choice(values)
    if rng.random() < 0.1:
        del ev["domain"]
    return ev


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path / "homeiq.db")
    try:
        out = {t: sorted(conn.execute(f"SELECT * FROM {t}"), key=repr) for t in _TABLES}
        out["batches"] = sorted(conn.execute("SELECT batch_id, accepted FROM batches"))
        return out
    finally:
        conn.close()


def _ingest(path: Path, bodies: list[bytes], fast: bool) -> list[Ack]:
    store = Store.open_sync(path)
    ingestor = Ingestor()
    store.tx_hooks.append(ingestor)

    def job(conn: sqlite3.Connection, body: bytes) -> Any:
        if fast:
            return ingestor.ingest_body(conn, body, 0.0)
        return ingestor.write_batch(conn, check_batch(orjson.loads(body)))

    try:
        return [store.submit(lambda c, b=b: job(c, b)).result() for b in bodies]
    finally:
        store.close_sync()


def test_fast_path_stores_what_the_schema_path_stores(tmp_path: Path) -> None:
    rng = random.Random(7)
    batches = [batch([_varied(rng, i * 50 + j) for j in range(50)]) for i in range(8)]
    # An integer orjson cannot write back: the fast path must give way, leaving nothing.
    batches.append(batch([service_event(999, data={"huge": 1})]))
    batches.append(batches[0])  # a duplicate
    bodies = [orjson.dumps(b) for b in batches]
    bodies[-2] = bodies[-2].replace(b'"huge":1', b'"huge":' + b"9" * 30)
    assert all(decode_fast(b) is not None for b in bodies)
    fast = _ingest(tmp_path / "fast", bodies, fast=True)
    slow = _ingest(tmp_path / "slow", bodies, fast=False)
    assert [a.as_dict() for a in fast] == [a.as_dict() for a in slow]
    assert fast[-1].duplicate
    # The body, not event dicts, marks an ack of the fast path; the huge integer gave way.
    assert fast[0].body is not None
    assert fast[-2].body is None
    assert _dump(tmp_path / "fast") == _dump(tmp_path / "slow")


def test_fast_ack_hands_the_stream_the_events_as_sent() -> None:
    body = orjson.dumps(batch([state_event(0, context_user_id=None), service_event(1)]))
    ack = Ack("b", 2, False, body=body)
    assert ack.events_for_stream(listening=True) == orjson.loads(body)["events"]
    assert ack.events_for_stream(listening=False) == []
