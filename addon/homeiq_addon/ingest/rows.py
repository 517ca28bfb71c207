"""A decoded batch's rows, with the writer's ids (on the writer thread, in a write job).

decode.py left each lookup value as the batch's distinct values and every event's index
into them. Here each distinct value becomes its id through the store's table managers
(their caches read in C, get-or-insert for the few values not cached), and the columns
are put together in C: ``itemgetter`` picks every event's id from the batch's few and
``zip`` makes the rows. The writer thread is ingest's one serial resource: it spends
well under a microsecond of Python per event here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
import sqlite3
from typing import Any

from ..store.ids import NUMBERISH, Ids
from ..store.memory_counts import Key
from .decode import DecodedBatch


def _ids[T](
    cache: dict[T, Any], add: Callable[[sqlite3.Connection, T], Any], conn: sqlite3.Connection,
    values: list[T],
) -> list[Any]:  # fmt: skip
    """[None, id of values[0], id of values[1], ...]: read from the cache, else added."""
    found: list[Any] = [None, *map(cache.get, values)]
    if None in found[1:]:
        for i, value in enumerate(values, 1):
            if found[i] is None:
                found[i] = add(conn, value)
    return found


def _picker(at: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """``values -> [values[i] for i in at]``, in C."""
    if len(at) == 1:
        (i,) = at
        return lambda values: (values[i],)
    return itemgetter(*at)


def event_rows(
    ids: Ids, conn: sqlite3.Connection, batch: DecodedBatch
) -> tuple[Iterator[tuple[Any, ...]], Counter[Key]]:
    """The rows (store.db.EVENT_COLUMNS) and their counts by (minute, event type, entity,
    domain), 0 standing for no entity or domain."""
    ids.trim()
    strings = ids.strings
    type_ids = _ids(ids.event_types.cache, ids.event_types.get_or_add, conn, batch.event_types)
    entity_ids = _ids(ids.entities.cache, ids.entities.get_or_add, conn, batch.entities)
    string_ids = _ids(strings.cache, strings.get_or_add, conn, batch.strings)
    # Number-like states stay text (store/ids.py NUMBERISH).
    states = [None, *(v if NUMBERISH(v) else strings.get_or_add(conn, v) for v in batch.states)]
    attribute_ids = _ids(ids.attributes.cache, ids.attributes.get_or_add, conn, batch.attributes)
    refs = _ids(ids.refs_cache, ids.refs, conn, batch.refs)
    refs[0] = (None, None, None)  # index 0: every field None
    registry, cause, snapshot = zip(*refs, strict=True)
    by_entity = _picker(batch.entity_at)
    by_domain = _picker(batch.domain_at)
    by_state = _picker(batch.state_at)
    by_refs = _picker(batch.refs_at)
    types = _picker(batch.event_type_at)(type_ids)
    rows = zip(
        batch.times,
        types,
        by_entity(entity_ids),
        by_domain(string_ids),
        batch.origins,
        batch.contexts,
        _picker(batch.user_at)(string_ids),
        batch.parents,
        by_state(states),
        _picker(batch.old_state_at)(states),
        batch.numbers,
        batch.agos,
        batch.prev_seconds,
        _picker(batch.attributes_at)(attribute_ids),
        batch.data,
        by_refs(registry),
        by_refs(cause),
        by_refs(snapshot),
        strict=True,
    )
    entity_ids[0] = string_ids[0] = 0
    keys = Counter(
        dict(
            zip(
                zip(
                    batch.key_minutes,
                    _picker(batch.key_event_type_at)(type_ids),
                    _picker(batch.key_entity_at)(entity_ids),
                    _picker(batch.key_domain_at)(string_ids),
                    strict=True,
                ),
                batch.key_counts,
                strict=True,
            )
        )
    )
    return rows, keys
