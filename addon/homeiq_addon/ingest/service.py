"""Writing a batch: its events and its id in one transaction, on the writer thread.

A body is decoded once (decode.py): by the decode worker process when it is big
(worker.py), else here on the writer thread, not on the event loop: two threads both busy
in Python would fight over the GIL, and the writer, which releases it for every SQLite
step, would lose (up to the switch interval per row). The event loop only moves bytes.
The writer then gives the batch's lookup values their ids and inserts the rows
(rows.py); the store counts them and writes the counts just before COMMIT.
"""

from __future__ import annotations

import sqlite3
import time

from ..errors import HomeIQError
from ..store.db import Store
from .decode import DecodedBatch, decode_batch
from .outcomes import Accepted, record_reject
from .rows import event_rows
from .worker_child import Pickled


class Ingestor:
    """Writes batches into the store; its methods run in the store's write jobs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def ingest(
        self,
        conn: sqlite3.Connection,
        body: bytes,
        decoded: DecodedBatch | HomeIQError | Pickled | None = None,
        started: float | None = None,
    ) -> Accepted | HomeIQError:
        """Write one request body (decoded already, or refused, by the decode worker).

        A refusal is answered, not raised: the job commits the count of refused
        batches, and nothing of the batch itself was written.
        """
        if isinstance(decoded, Pickled):
            decoded = decoded.load()
        if decoded is None:
            try:
                decoded = decode_batch(body)
            except HomeIQError as err:
                decoded = err
        if isinstance(decoded, HomeIQError):
            record_reject(conn)
            return decoded
        return self.write(conn, decoded, body, started)

    def write(
        self,
        conn: sqlite3.Connection,
        batch: DecodedBatch,
        body: bytes | None = None,
        started: float | None = None,
    ) -> Accepted:
        """Insert a batch unless its id was seen: then the first acknowledgement again."""
        batch_id = batch.batch_id
        hit = conn.execute("SELECT accepted FROM batches WHERE batch_id = ?", (batch_id,))
        if (seen := hit.fetchone()) is not None:
            return Accepted(batch_id, int(seen[0]), True)
        rows, keys = event_rows(self._store.ids, conn, batch)
        self._store.insert_events(conn, rows, keys)
        latency = 0.0 if started is None else (time.perf_counter() - started) * 1000
        conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
            (batch_id, time.time_ns() // 1000, len(batch.times), latency, *batch.source),
        )
        return Accepted(batch_id, len(batch.times), False, body=body)
