"""Both ways a body is decoded store the same: on the writer thread (small bodies), and
in the decode worker process (big ones), whose answer the writer only gives ids."""

from __future__ import annotations

import asyncio
from pathlib import Path
import random
import sqlite3
from typing import Any

import orjson

from homeiq_addon.ingest.decode import DecodedBatch
from homeiq_addon.ingest.outcomes import Accepted
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.ingest.worker import WORKER_MIN_BYTES, DecodeWorker
from homeiq_addon.ingest.worker_child import Pickled
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


async def _decode_in_worker(bodies: list[bytes]) -> list[Pickled | None]:
    """The real worker process's answers, as the ingest route gets them."""
    worker = DecodeWorker()
    try:
        assert await worker.ready()
        return [await worker.decode(body) for body in bodies]
    finally:
        await worker.close()


def _ingest(path: Path, bodies: list[bytes], *, in_worker: bool) -> list[Any]:
    answers: list[Pickled | None] = [None] * len(bodies)
    if in_worker:
        answers = asyncio.run(_decode_in_worker(bodies))
        assert all(a is not None and isinstance(a.load(), DecodedBatch) for a in answers)
    store = Store.open_sync(path)
    ingestor = Ingestor(store)
    try:
        return [
            store.submit(lambda c, b=b, a=a: ingestor.ingest(c, b, a)).result()
            for b, a in zip(bodies, answers, strict=True)
        ]
    finally:
        store.close_sync()


def _bodies(seed: int) -> list[bytes]:
    """Big bodies of varied events: a duplicate, and an integer orjson cannot write."""
    rng = random.Random(seed)
    batches = [batch([_varied(rng, i * 150 + j) for j in range(150)]) for i in range(6)]
    batches.append(batch([service_event(999, data={"huge": 1}), *batches[1]["events"]]))
    batches.append(batches[0])  # a duplicate
    bodies = [orjson.dumps(b) for b in batches]
    bodies[-2] = bodies[-2].replace(b'"huge":1', b'"huge":' + b"9" * 30)
    assert all(len(b) >= WORKER_MIN_BYTES for b in bodies)
    return bodies


def test_the_worker_and_the_writer_store_the_same(tmp_path: Path) -> None:
    bodies = _bodies(7)
    on_writer = _ingest(tmp_path / "writer", bodies, in_worker=False)
    in_worker = _ingest(tmp_path / "worker", bodies, in_worker=True)
    assert [a.answer() for a in on_writer] == [a.answer() for a in in_worker]
    assert [a.duplicate for a in on_writer] == [False] * 7 + [True]
    stored = _dump(tmp_path / "writer")
    assert stored == _dump(tmp_path / "worker")
    assert len(stored["events"]) == 6 * 150 + 151
    # The huge integer is kept as the number orjson reads it as.
    assert any('{"huge":1e30}' in row for row in stored["events"])


def test_the_ack_hands_the_stream_the_events_as_sent() -> None:
    body = orjson.dumps(batch([state_event(0, context_user_id=None), service_event(1)]))
    ack = Accepted("b", 2, False, body=body)
    assert ack.events_for_stream(listening=True) == orjson.loads(body)["events"]
    assert ack.events_for_stream(listening=False) == []
    assert Accepted("b", 2, True).events_for_stream(listening=True) == []
