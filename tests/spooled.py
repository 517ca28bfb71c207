"""The events of a spooled batch, whichever form the integration wrote it in.

Written here, apart from the integration's own code (`wire.plain_batch`), so that a test
reading the spool checks that code rather than repeats it.
"""

from __future__ import annotations

from typing import Any

import orjson


def spooled_events(body: bytes) -> list[dict[str, Any]]:
    """Each event of the batch, in order: as sent in `events`, or made from its blocks of
    columns (the keys its columns give it a value for). An event that refers to its
    entity keeps its `entity` index."""
    batch = orjson.loads(body)
    if "columns" not in batch:
        return list(batch["events"])
    return [
        {name: values[at] for name, values in block.items() if values[at] is not None}
        for block in batch["columns"]
        for at in range(len(block["time_fired"]))
    ]
