"""Attribute sets no stored event uses any more: found after a purge, deleted in steps.

Events point at their attribute set by id (each distinct set is stored once). Purging raw
events leaves behind the sets only they used; without this step the attributes table
would grow for ever with volatile attributes (a media player's position, the sun's next
rising), whatever the retention rules say.

``events.attributes_ref`` has no index (one would cost every ingest), so the used ids are
gathered by reading events in id ranges on a reader, into a bitmap. Ingest goes on
meanwhile and may reuse any set, so every delete step, on the writer, first marks the
sets of the events stored since the last look and deletes only sets still unmarked.
Nothing else deletes events while this runs (retention runs one at a time), so "stored
since" is exactly "id above the last one looked at"; a restore meanwhile swaps the whole
database, and then nothing more is deleted. The ingest's id caches are cleared in the
same step: it runs on the same thread, so no batch can see a deleted id.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
import sqlite3
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ..store.db import Store

SCAN_ROWS: Final = 100_000  # events read per reader step
DELETE_SPAN: Final = 5_000  # attribute ids looked at per writer step


class _Used:
    """A bitmap of attribute ids up to `top` in use, and the newest event id looked at."""

    def __init__(self, top: int, seen_upto: int, replacements: int) -> None:
        self.top = top
        self.bits = bytearray(top // 8 + 1)
        self.seen_upto = seen_upto
        self.replacements = replacements  # the store's count when the scan began

    def mark(self, ids: Iterable[int]) -> None:
        bits, top = self.bits, self.top
        for i in ids:
            if i <= top:  # newer sets are never candidates
                bits[i >> 3] |= 1 << (i & 7)

    def __contains__(self, i: int) -> bool:
        return bool(self.bits[i >> 3] & (1 << (i & 7)))


def _refs(conn: sqlite3.Connection, low: int, high: int) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT attributes_ref FROM events"
        " WHERE id > ? AND id <= ? AND attributes_ref IS NOT NULL",
        (low, high),
    )
    return [r[0] for r in rows]


def _tops(conn: sqlite3.Connection) -> tuple[int, int]:
    top_attr, top_event = conn.execute(
        "SELECT (SELECT MAX(id) FROM attributes), (SELECT MAX(id) FROM events)"
    ).fetchone()
    return top_attr or 0, top_event or 0


async def remove_orphan_attributes(store: Store) -> int:
    """Delete attribute sets that no event refers to; returns how many went."""
    used = await used_attributes(store)
    return 0 if used is None else await delete_unused(store, used)


async def used_attributes(store: Store) -> _Used | None:
    """The sets the stored events use (None: there are no sets)."""
    top_attr, top_event = await store.read(_tops)
    if not top_attr:
        return None
    used = _Used(top_attr, top_event, store.replacements)
    for low in range(0, top_event, SCAN_ROWS):
        used.mark(await store.read(partial(_refs, low=low, high=low + SCAN_ROWS)))
    return used


async def delete_unused(store: Store, used: _Used) -> int:
    """Delete, in steps, the sets up to the bitmap's top that no event uses by then."""

    def step(conn: sqlite3.Connection, first: int) -> int:
        if store.replacements != used.replacements:
            return 0  # restored since the scan: the bitmap describes another database
        newest = _tops(conn)[1]
        used.mark(_refs(conn, used.seen_upto, newest))
        used.seen_upto = max(used.seen_upto, newest)
        ids = conn.execute(
            "SELECT id FROM attributes WHERE id >= ? AND id < ? AND id <= ?",
            (first, first + DELETE_SPAN, used.top),
        )
        doomed = [(i,) for (i,) in ids if i not in used]
        if doomed:
            conn.executemany("DELETE FROM attributes WHERE id = ?", doomed)
            store.forget_row_ids()
        return len(doomed)

    removed = 0
    for first in range(1, used.top + 1, DELETE_SPAN):
        removed += await store.write(partial(step, first=first))
    return removed
