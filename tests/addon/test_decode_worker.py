"""Big batches go through the decode worker: refused or stored as the writer would, never
with a stale id, and a killed worker costs no batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import sys
from typing import Any

import aiohttp
import orjson
import pytest

import homeiq_addon
from homeiq_addon.errors import InvalidBatch
from homeiq_addon.ingest.outcomes import Accepted
from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.ingest.worker import WORKER_MIN_BYTES, DecodeWorker
from homeiq_addon.ingest.worker_child import Answer
from homeiq_addon.store.db import Store
from tests.addon.factory import batch, state_event
from tests.addon.retention_data import Api
from tests.conftest import AddonProcess, running_addon


class _Worker:
    """A store and the real decode worker process, fed the way the ingest route feeds them."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open_sync(path)
        self.ingestor = Ingestor(self.store)

    def decode(self, body: bytes) -> Answer:
        async def decode() -> Answer:
            worker = DecodeWorker()
            try:
                assert await worker.ready()
                answer = await worker.decode(body)
                return None if answer is None else answer.load()
            finally:
                await worker.close()

        return asyncio.run(decode())

    def write(self, decoded: Answer, body: bytes) -> Any:
        ing = self.ingestor
        return self.store.submit(lambda c: ing.ingest(c, body, decoded, 0.0)).result()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[_Worker]:
    w = _Worker(tmp_path / "worker")
    yield w
    w.store.close_sync()


def test_a_batch_decoded_before_ids_were_dropped_gets_the_ids_of_now(worker: _Worker) -> None:
    volatile = [state_event(i, attributes={"position": i, "pad": "x" * 200}) for i in range(300)]
    first = orjson.dumps(batch(volatile))
    assert len(first) >= WORKER_MIN_BYTES
    worker.write(worker.decode(first), first)
    again = orjson.dumps(batch(volatile))  # same attribute sets, under a new batch id
    decoded = worker.decode(again)

    def cleanup(conn: sqlite3.Connection) -> None:
        # What retention's attribute-set cleanup does: delete sets, drop cached ids.
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM attributes")
        worker.store.forget_row_ids()

    worker.store.submit(cleanup).result()
    ack = worker.write(decoded, again)
    assert isinstance(ack, Accepted) and ack.accepted == 300
    dangling = worker.store.read_sync(
        lambda c: c.execute(
            "SELECT COUNT(*) FROM events e LEFT JOIN attributes a ON a.id = e.attributes_ref"
            " WHERE a.id IS NULL"
        ).fetchone()[0]
    )
    assert dangling == 0


def test_the_worker_refuses_a_bad_batch_naming_the_field(worker: _Worker) -> None:
    events = [state_event(i) for i in range(300)]
    bad = orjson.dumps(batch(events)).replace(b'"LOCAL"', b'"THERE"')
    answer = worker.decode(bad)
    assert isinstance(answer, InvalidBatch)
    assert answer.message == "events[0].origin: expected LOCAL or REMOTE"
    # Written, the refusal is counted and answered; nothing of the batch is stored.
    assert worker.write(answer, bad) is answer
    counts = worker.store.read_sync(
        lambda c: (
            c.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            c.execute("SELECT SUM(n) FROM batch_rejects").fetchone()[0],
        )
    )
    assert counts == (0, 1)


# --- the real add-on process -----------------------------------------------------------


def _workers(pid: int) -> set[int]:
    """The add-on's decode worker processes."""
    found = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"homeiq_addon.ingest.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
            found.add(int(child))
    return found


async def _ready_worker(server: AddonProcess) -> int:
    """The add-on's decode worker, once it takes bodies (until then the writer decodes
    them: the first big body only starts it)."""
    assert server.proc is not None
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        workers = _workers(server.proc.pid)
        if len(workers) == 1 and f"decode worker {min(workers)} ready" in server.log():
            return min(workers)
        assert asyncio.get_running_loop().time() < deadline, "no decode worker got ready"
        await asyncio.sleep(0.05)


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
    worker = await _ready_worker(addon_server)
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


async def test_the_idle_worker_leaves_and_the_next_burst_brings_it_back(tmp_path: Path) -> None:
    env = {"HOMEIQ_DECODE_WORKER_IDLE_S": "0.5"}
    with running_addon(tmp_path / "data", env=env) as server:
        assert server.proc is not None
        pid = server.proc.pid
        async with aiohttp.ClientSession() as session:
            api = Api(server, session)
            stored = 0
            for burst in range(2):
                for k in range(3):  # the first starts the worker, the writer decodes it
                    status, answer = await api.call("POST", "/api/v1/ingest", _big(k * 300))
                    assert (status, answer["accepted"]) == (200, 300), answer
                    stored += 300
                worker = await _ready_worker(server)
                status, answer = await api.call("POST", "/api/v1/ingest", _big(900 + burst))
                assert (status, answer["accepted"]) == (200, 300), answer
                stored += 300
                # Idle: it leaves, and takes its memory along.
                deadline = asyncio.get_running_loop().time() + 30
                while worker in _workers(pid) or _running(worker):
                    assert asyncio.get_running_loop().time() < deadline, "the worker stayed"
                    await asyncio.sleep(0.05)
                assert _workers(pid) == set()
                assert server.row_count() == stored
        assert "the decode worker process ended" not in server.log()  # no failure


def test_the_worker_process_loads_no_more_than_decoding_needs() -> None:
    """The worker's imports are its memory (a Python of its own, beside the service's):
    no event loop, no HTTP, no SQLite, no OpenSSL (hashlib's ~3.5 MB)."""
    found = subprocess.run(
        [sys.executable, "-c",
         "import sys, homeiq_addon.ingest.worker_child; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(homeiq_addon.__file__).parents[1])},
    ).stdout.split()  # fmt: skip
    assert {"asyncio", "aiohttp", "sqlite3", "hashlib", "_hashlib"}.isdisjoint(found)
    assert "homeiq_addon.ingest.decode" in found  # what it is there for
