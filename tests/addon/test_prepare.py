"""Big batches go through the decode worker: same rows, never a stale id, survives a kill."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import os
from pathlib import Path
import random
import signal
import sqlite3
from typing import Any

import aiohttp
import orjson
import pytest

from homeiq_addon.ingest.acks import Ack
from homeiq_addon.ingest.prepare import Mirror, Prepared, prepare_batch
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.ingest.worker import WORKER_MIN_BYTES
from homeiq_addon.store.db import Store
from tests.addon.factory import batch, state_event
from tests.addon.retention_data import Api
from tests.addon.test_ingest_paths import _dump, _ingest, _varied
from tests.conftest import AddonProcess


class _Worker:
    """A store and ingestor fed the way the route feeds them, the worker run in process."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open_sync(path)
        self.ingestor = Ingestor()
        self.store.tx_hooks.append(self.ingestor)
        self.mirror = Mirror()

    def prepare(self, body: bytes) -> Prepared | None:
        return prepare_batch(body, *self.ingestor.take_learned(), mirror=self.mirror)

    def write(self, prepared: Prepared | None, body: bytes) -> Any:
        ing = self.ingestor
        return self.store.submit(lambda c: ing.ingest_prepared(c, prepared, body, 0.0)).result()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[_Worker]:
    w = _Worker(tmp_path / "worker")
    yield w
    w.store.close_sync()


def test_worker_rows_store_what_the_writer_stores(tmp_path: Path, worker: _Worker) -> None:
    rng = random.Random(11)
    batches = [batch([_varied(rng, i * 50 + j) for j in range(50)]) for i in range(8)]
    batches.append(batches[0])  # a duplicate
    batches.append(batch(batches[1]["events"]))  # nothing new to learn
    bodies = [orjson.dumps(b) for b in batches]
    acks, placeholders = [], []
    for body in bodies:
        prepared = worker.prepare(body)
        assert prepared is not None
        placeholders.append(len(prepared.new))
        acks.append(worker.write(prepared, body))
    worker.store.close_sync()
    writer = _ingest(tmp_path / "writer", bodies, fast=True)
    assert [a.as_dict() for a in acks] == [a.as_dict() for a in writer]
    assert _dump(tmp_path / "worker") == _dump(tmp_path / "writer")
    # The first batch knew nothing; the repeat of a committed one needs no placeholder.
    assert placeholders[0] > 0
    assert placeholders[-1] == 0


def test_a_batch_prepared_before_ids_were_dropped_is_decoded_again(worker: _Worker) -> None:
    volatile = [state_event(i, attributes={"position": i}) for i in range(20)]
    first = orjson.dumps(batch(volatile))
    worker.write(worker.prepare(first), first)
    again = orjson.dumps(batch(volatile))  # same attribute sets, under a new batch id
    prepared = worker.prepare(again)
    assert prepared is not None and not prepared.new  # the worker used the writer's ids

    def cleanup(conn: sqlite3.Connection) -> None:
        # What retention's attribute-set cleanup does: delete sets, drop cached ids.
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM attributes")
        worker.store.forget_row_ids()

    worker.store.submit(cleanup).result()
    ack = worker.write(prepared, again)
    assert isinstance(ack, Ack) and ack.accepted == 20
    dangling = worker.store.read_sync(
        lambda c: c.execute(
            "SELECT COUNT(*) FROM events e LEFT JOIN attributes a ON a.id = e.attributes_ref"
            " WHERE a.id IS NULL"
        ).fetchone()[0]
    )
    assert dangling == 0


def test_the_worker_gives_way_on_what_it_cannot_judge(worker: _Worker) -> None:
    bad = orjson.dumps(batch([state_event(i) for i in range(3)])).replace(b'"LOCAL"', b'"THERE"')
    assert worker.prepare(bad) is None
    answer = worker.write(None, bad)
    assert answer.status == 422 and "origin" in answer.message


# --- the real add-on process -----------------------------------------------------------


def _workers(pid: int) -> set[int]:
    """The add-on's decode worker processes."""
    found = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"homeiq_addon.ingest.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
            found.add(int(child))
    return found


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


def _big(start: int, n: int = 300) -> dict[str, Any]:
    body = batch([state_event(start + i) for i in range(n)])
    assert len(orjson.dumps(body)) > WORKER_MIN_BYTES
    return body


async def test_big_batches_are_stored_and_survive_a_killed_worker(
    api: Api, addon_server: AddonProcess
) -> None:
    assert addon_server.proc is not None
    pid = addon_server.proc.pid
    assert _workers(pid) == set()  # small homes never start the worker

    first = _big(0)
    status, answer = await api.call("POST", "/api/v1/ingest", first)
    assert (status, answer["accepted"], answer["duplicate"]) == (200, 300, False)
    status, answer = await api.call("POST", "/api/v1/ingest", first)
    assert (status, answer["accepted"], answer["duplicate"]) == (200, 300, True)
    bad = orjson.dumps(_big(1000)).replace(b'"origin":"LOCAL"', b'"origin":1', 1)
    status, answer = await api.call("POST", "/api/v1/ingest", bad)
    assert status == 422 and "events[0].origin" in answer["message"], answer

    workers = _workers(pid)
    assert len(workers) == 1
    (victim,) = workers
    os.kill(victim, signal.SIGKILL)  # as the OOM killer would
    for start in (2000, 3000):
        status, answer = await api.call("POST", "/api/v1/ingest", _big(start))
        assert (status, answer["accepted"]) == (200, 300), answer
    assert addon_server.row_count() == 900
    status, listing = await api.call(
        "GET", "/api/v1/events?entity_id=sensor.living_room_temperature_3&limit=1000"
    )
    expected = sum(1 for s in (0, 2000, 3000) for i in range(s, s + 300) if i % 7 == 3)
    assert status == 200 and len(listing["events"]) == expected
    assert len(_workers(pid) - {victim}) == 1  # a new worker took over


async def test_a_batch_in_the_worker_when_it_dies_is_still_stored(
    api: Api, addon_server: AddonProcess
) -> None:
    assert addon_server.proc is not None
    status, _ = await api.call("POST", "/api/v1/ingest", _big(0))
    assert status == 200
    (worker,) = _workers(addon_server.proc.pid)
    os.kill(worker, signal.SIGSTOP)  # the next batch waits in the worker's pipe
    sending = asyncio.create_task(api.call("POST", "/api/v1/ingest", _big(1000)))
    await asyncio.sleep(0.5)
    assert not sending.done()
    os.kill(worker, signal.SIGKILL)
    status, answer = await asyncio.wait_for(sending, 30)
    assert (status, answer["accepted"]) == (200, 300), answer
    assert addon_server.row_count() == 600


async def test_the_worker_leaves_with_a_killed_add_on(api: Api, addon_server: AddonProcess) -> None:
    assert addon_server.proc is not None
    status, _ = await api.call("POST", "/api/v1/ingest", _big(0))
    assert status == 200
    workers = _workers(addon_server.proc.pid)
    assert workers
    addon_server.kill()  # SIGKILL: no shutdown code runs in the add-on
    deadline = asyncio.get_running_loop().time() + 20
    while any(_running(p) for p in workers):
        assert asyncio.get_running_loop().time() < deadline, "the worker outlived the add-on"
        await asyncio.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
