"""A decoded batch's rows, with the writer's ids (on the writer thread, in a write job).

decode.py left each lookup value as the batch's distinct values and every event's index
into them. Here each distinct value becomes its id through the store's table managers
(a dictionary lookup when cached, get-or-insert otherwise), and the columns are put
together in C: ``itemgetter`` picks every event's id from the batch's few, ``zip`` makes
the rows and ``Counter`` the counts by minute key. The writer thread, ingest's one
serial resource, so spends well under a microsecond of Python per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from operator import itemgetter
import sqlite3
from typing import Any

from ..store.ids import NUMBERISH, Ids
from ..store.memory_counts import Key
from .decode import DecodedBatch


def _pick(values: Sequence[Any], at: list[int]) -> Sequence[Any]:
    """``values[i]`` for every i in ``at``."""
    if len(at) == 1:
        return (values[at[0]],)
    picked: Sequence[Any] = itemgetter(*at)(values)
    return picked


def event_rows(
    ids: Ids, conn: sqlite3.Connection, batch: DecodedBatch
) -> tuple[Iterator[tuple[Any, ...]], Counter[Key]]:
    """The rows (store.db.EVENT_COLUMNS) and their counts by (minute, event type, entity,
    domain), 0 standing for no entity or domain."""
    ids.trim()
    strings = ids.strings.get_or_add
    type_ids = [None, *(ids.event_types.get_or_add(conn, v) for v in batch.event_types)]
    entity_ids = [None, *(ids.entities.get_or_add(conn, v) for v in batch.entities)]
    string_ids = [None, *(strings(conn, v) for v in batch.strings)]
    # Number-like states stay text (store/ids.py NUMBERISH).
    states = [None, *(v if NUMBERISH(v) else strings(conn, v) for v in batch.states)]
    attribute_ids = [None, *(ids.attributes.get_or_add(conn, v) for v in batch.attributes)]
    refs = [ids.refs(conn, fields) for fields in batch.refs]
    types = _pick(type_ids, batch.event_type_at)
    entity_at, domain_at, refs_at = batch.entity_at, batch.domain_at, batch.refs_at
    keys = Counter(
        zip(
            batch.minutes,
            types,
            _pick([0, *entity_ids[1:]], entity_at),
            _pick([0, *string_ids[1:]], domain_at),
            strict=True,
        )
    )
    rows = zip(
        batch.times,
        types,
        _pick(entity_ids, entity_at),
        _pick(string_ids, domain_at),
        batch.origins,
        batch.contexts,
        _pick(string_ids, batch.user_at),
        batch.parents,
        _pick(states, batch.state_at),
        _pick(states, batch.old_state_at),
        batch.numbers,
        batch.agos,
        batch.prev_seconds,
        _pick(attribute_ids, batch.attributes_at),
        batch.data,
        _pick([r[0] for r in refs], refs_at),
        _pick([r[1] for r in refs], refs_at),
        _pick([r[2] for r in refs], refs_at),
        strict=True,
    )
    return rows, keys
