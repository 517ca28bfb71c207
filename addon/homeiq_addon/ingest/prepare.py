"""Decoding a batch and building its rows away from the writer, then filling in its ids.

The writer thread is ingest's one serial resource, and decoding plus row building was
half of its work per event (~5.5 µs of ~11), all of it holding the GIL. Big bodies are
therefore decoded, validated and turned into rows in a worker process on the other
core (``prepare_batch``, run by worker.py); the writer then only resolves what the
worker could not know and inserts (``fill_placeholders``, ``Ingestor.ingest_prepared``).

Dimension ids stay the writer's alone. The worker keeps a mirror of the ids the writer
told it (``Mirror``) and puts a placeholder, -1 for the batch's first unknown value, -2
for the next, in place of every id it does not know; the writer looks those up or adds
them, patches the rows, and after the commit tells the worker the new ids with the next
task. Anything that can invalidate an id the worker holds (a rollback, a restore, the
cleanup of unused attribute sets) bumps the ingestor's epoch: a batch prepared under an
older epoch is decoded again on the writer, and the worker drops its mirror.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..store.ids import Key
from .rows import build_rows, intern
from .wire import decode_fast

if TYPE_CHECKING:
    import sqlite3

    from .service import Ingestor

_MIRROR_LIMIT: Final = 100_000
# Row columns that hold dimension ids (see ingest._INSERT); 15-17 come from one combo.
DIM_COLUMNS: Final = (1, 2, 3, 6, 8, 9, 13, 15, 16, 17)
COMBO_FIRST: Final = 15

type New = tuple[Any, ...]  # (table, value), or ("attributes", quick dump, sorted dump)
type Learned = tuple[str, Any, Any]  # (table, cache key, id or refs)


@dataclass(slots=True)
class Prepared:
    """A validated batch as rows, with placeholders where the worker lacked an id."""

    epoch: int
    batch_id: str
    source: tuple[str, str]
    rows: list[tuple[Any, ...]]
    keys: Counter[Key]
    new: list[New]  # what placeholder -1, -2, ... stand for
    dirty: list[int]  # rows holding a placeholder


class Mirror:
    """The worker's copy of the writer's ids; a ``rows.Dims`` that never touches SQLite."""

    def __init__(self) -> None:
        self.epoch = -1
        self.text_ids: tuple[dict[Any, int], dict[Any, int], dict[Any, int]] = ({}, {}, {})
        self.combos: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self.attrs: dict[bytes, int] = {}
        self.new: list[New] = []
        self._added: list[tuple[dict[Any, Any], Any]] = []

    def _caches(self) -> dict[str, dict[Any, Any]]:
        types, entities, strings = self.text_ids
        return {
            "event_types": types,
            "entities": entities,
            "strings": strings,
            "combo": self.combos,
            "attributes": self.attrs,
        }

    def learn(self, epoch: int, learned: list[Learned]) -> None:
        caches = self._caches()
        if epoch != self.epoch or any(len(c) > _MIRROR_LIMIT for c in caches.values()):
            for cache in caches.values():
                cache.clear()
            self.epoch = epoch
        for table, key, value in learned:
            caches[table][key] = value

    def _placeholder(self, cache: dict[Any, Any], key: Any, new: New, value: Any) -> None:
        self.new.append(new)
        cache[key] = value
        self._added.append((cache, key))

    def intern(self, cache: dict[Any, int], table: str, value: Any) -> int:
        found = cache.get(value)
        if found is None:
            found = -1 - len(self.new)
            self._placeholder(cache, value, (table, value), found)
        return found

    def refs(self, combo: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        k = -1 - len(self.new)
        self._placeholder(self.combos, combo, ("combo", combo), (k, k, k))
        return (k, k, k)

    def attributes_ref(self, attrs: dict[str, Any]) -> int:
        quick = orjson.dumps(attrs)
        found = self.attrs.get(quick)
        if found is None:
            found = -1 - len(self.new)
            blob = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
            self._placeholder(self.attrs, quick, ("attributes", quick, blob), found)
        return found

    def forget_placeholders(self) -> None:
        for cache, key in self._added:
            cache.pop(key, None)
        self._added.clear()
        self.new = []


_MIRROR = Mirror()  # the worker process's own


def prepare_batch(
    body: bytes, epoch: int, learned: list[Learned], mirror: Mirror = _MIRROR
) -> Prepared | None:
    """Run in the worker: the batch's rows, or None when the writer must decide."""
    mirror.learn(epoch, learned)
    decoded = decode_fast(body)
    if decoded is None:
        return None
    keys: Counter[Key] = Counter()
    try:
        rows = build_rows(mirror, decoded, keys)
    except (TypeError, ValueError, OverflowError):
        return None  # the writer's slow path judges it (see Ingestor._write_decoded)
    finally:
        new = mirror.new
        mirror.forget_placeholders()
    dirty: list[int] = []
    if new:
        for i, row in enumerate(rows):
            for c in DIM_COLUMNS:
                v = row[c]
                if type(v) is int and v < 0:
                    dirty.append(i)
                    break
    batch = decoded.batch
    source = (batch.source.instance_id, batch.source.integration_version)
    return Prepared(epoch, batch.batch_id, source, rows, keys, new, dirty)


def fill_placeholders(
    ing: Ingestor, conn: sqlite3.Connection, prepared: Prepared
) -> tuple[list[tuple[Any, ...]], Counter[Key], list[Learned]]:
    """On the writer: the rows and counts with real ids, and the ids found for the worker."""
    types, entities, strings = ing.text_ids
    caches = {"event_types": types, "entities": entities, "strings": strings}
    found: list[Any] = []
    learned: list[Learned] = []
    for table, key, *blob in prepared.new:
        if table == "combo":
            got: Any = ing.combos.get(key) or ing.refs(conn, key)
        elif table == "attributes":
            got = ing.attributes_by_blob(conn, key, blob[0])
        else:
            cache = caches[table]
            got = cache.get(key) or intern(conn, cache, table, key)
        found.append(got)
        learned.append((table, key, got))

    def real(v: Any, column: int = 0) -> Any:
        if type(v) is not int or v >= 0:
            return v
        got = found[-1 - v]
        return got[column - COMBO_FIRST] if column >= COMBO_FIRST else got

    rows = list(prepared.rows)
    for i in prepared.dirty:
        row = list(rows[i])
        for c in DIM_COLUMNS:
            row[c] = real(row[c], c)
        rows[i] = tuple(row)
    keys: Counter[Key] = Counter()
    for (minute, type_id, entity, domain), n in prepared.keys.items():
        keys[(minute, real(type_id), real(entity), real(domain))] += n
    return rows, keys, learned
