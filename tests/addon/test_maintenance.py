"""Bookkeeping tables are pruned after 8 days; events are left to retention."""

from __future__ import annotations

from pathlib import Path
import time

import orjson

from homeiq_addon.ingest.service import Ingestor
from homeiq_addon.store.db import Store
from homeiq_addon.store.maintenance import KEEP_SECONDS, prune
from tests.addon.factory import batch, state_event


async def test_prune_keeps_recent_rows_and_all_events(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    ingestor = Ingestor(store)
    try:
        for i in range(3):
            body = orjson.dumps(batch([state_event(i)]))
            await store.write(lambda c, b=body: ingestor.ingest(c, b))
        # Pretend the first batch arrived 9 days ago.
        old_us = int((time.time() - KEEP_SECONDS - 86_400) * 1e6)
        await store.write(
            lambda c: c.execute(
                "UPDATE batches SET received_us = ? WHERE batch_id = "
                "(SELECT batch_id FROM batches ORDER BY received_us LIMIT 1)",
                (old_us,),
            )
        )
        removed = await prune(store)
        assert removed >= 1
        counts = await store.read(
            lambda c: (
                c.execute("SELECT COUNT(*) FROM batches").fetchone()[0],
                c.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            )
        )
        assert counts == (2, 3)
        assert await prune(store) == 0
    finally:
        await store.close()
