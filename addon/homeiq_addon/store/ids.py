"""The lookup tables' ids: one manager per table, as Home Assistant's recorder keeps them
(``recorder/table_managers/``): a cache of the ids known, get-or-insert for a value
not cached, and a reset.

Event rows hold ids, not the repeated text: event types, entity ids, strings (domains,
user ids, word-like states), attribute sets (stored once per distinct set, by hash),
and the registry, cause and snapshot tuples. The store owns the managers (``Store.ids``)
and resets them all whenever a cached id may point at a row that is gone: after any
rollback (also of one job's savepoint), a restore, or a cleanup that deleted rows
(``Store.forget_row_ids``). They are used on the writer thread only.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Any, Final

import orjson

from .ref_keys import CAUSE_KEYS, REGISTRY_KEYS, SNAP_KEYS

# Number-like states (sensor readings, timestamps) rarely repeat: stored as text, not interned.
NUMBERISH: Final = re.compile(r"[-+.0-9]").match
# A cache is dropped wholesale past its size: cheap, and keeps the RSS bounded when
# attribute sets or states never repeat. Only between batches (``Ids.trim``), so the ids
# a batch resolved stay valid until its rows are written. Short texts (entity ids, words)
# take ~100 B an entry; attribute sets and the registry/cause/snapshot fields ~600 B, and
# the fields change whenever a snapshot does (the outdoor temperature, the sun's
# elevation): 100,000 of those held 60 MB. A few thousand cover every entity of a home
# between two snapshot changes, and a miss costs only a lookup by index.
CACHE_LIMIT: Final = 20_000
WIDE_CACHE_LIMIT: Final = 4_096


class TextIds:
    """A table of distinct strings (``event_types``, ``strings``)."""

    __slots__ = ("_insert", "_select", "cache")

    def __init__(self, table: str, column: str) -> None:
        self.cache: dict[str, int] = {}
        self._select = f"SELECT id FROM {table} WHERE {column} = ?"
        self._insert = f"INSERT INTO {table} ({column}) VALUES (?)"

    def get_or_add(self, conn: sqlite3.Connection, value: str) -> int:
        found = self.cache.get(value)
        if found is None:
            hit = conn.execute(self._select, (value,)).fetchone()
            found = int(hit[0]) if hit is not None else self._add(conn, value)
            self.cache[value] = found
        return found

    def _add(self, conn: sqlite3.Connection, value: str) -> int:
        return int(conn.execute(self._insert, (value,)).lastrowid or 0)

    def reset(self) -> None:
        self.cache.clear()


# An events row's domain as a ``strings`` id, 0 for none: a row of an entity of that
# domain stores none (EntityIds), and the entity's is read.
EVENT_DOMAIN_REF: Final = (
    "COALESCE(domain_ref, (SELECT domain_ref FROM entities WHERE id = entity_ref), 0)"
)


class EntityIds(TextIds):
    """``entities``: the entity id and its domain, as text and as a ``strings`` id (an
    event of the entity stores no domain of its own unless it names another)."""

    __slots__ = ("_strings",)

    def __init__(self, strings: TextIds) -> None:
        super().__init__("entities", "entity_id")
        self._strings = strings

    def _add(self, conn: sqlite3.Connection, value: str) -> int:
        domain = value.partition(".")[0]
        cur = conn.execute(
            "INSERT INTO entities (entity_id, domain, domain_ref) VALUES (?, ?, ?)",
            (value, domain, self._strings.get_or_add(conn, domain)),
        )
        return int(cur.lastrowid or 0)


class TupleIds:
    """A table of distinct tuples (``registry``, ``causes``, ``snapshots``), keyed by
    their JSON; a tuple inside (the labels) is stored as JSON."""

    __slots__ = ("_insert", "_select", "cache")

    def __init__(self, table: str, columns: tuple[str, ...]) -> None:
        self.cache: dict[tuple[Any, ...], int] = {}
        self._select = f"SELECT id FROM {table} WHERE key = ?"
        self._insert = (
            f"INSERT INTO {table} (key, {', '.join(columns)}) VALUES (?{', ?' * len(columns)})"
        )

    def get_or_add(self, conn: sqlite3.Connection, value: tuple[Any, ...]) -> int:
        found = self.cache.get(value)
        if found is None:
            key = orjson.dumps(value).decode()
            hit = conn.execute(self._select, (key,)).fetchone()
            if hit is not None:
                found = int(hit[0])
            else:
                stored = [orjson.dumps(v).decode() if isinstance(v, tuple) else v for v in value]
                found = int(conn.execute(self._insert, (key, *stored)).lastrowid or 0)
            self.cache[value] = found
        return found

    def reset(self) -> None:
        self.cache.clear()


class AttributeIds:
    """``attributes``: each distinct set once, found by the hash of its sorted JSON.

    Cached by the set's JSON as sent: the same integration sends keys in the same order;
    another order costs only a lookup of the sorted form."""

    __slots__ = ("cache",)

    def __init__(self) -> None:
        self.cache: dict[bytes, int] = {}

    def get_or_add(self, conn: sqlite3.Connection, as_sent: bytes) -> int:
        found = self.cache.get(as_sent)
        if found is None:
            blob = orjson.dumps(orjson.loads(as_sent), option=orjson.OPT_SORT_KEYS)
            digest = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), signed=True)
            text = blob.decode()
            # A hash collision is possible; the stored JSON decides.
            for row_id, stored in conn.execute(
                "SELECT id, json FROM attributes WHERE hash = ?", (digest,)
            ):
                if stored == text:
                    found = int(row_id)
                    break
            else:
                cur = conn.execute(
                    "INSERT INTO attributes (hash, json) VALUES (?, ?)", (digest, text)
                )
                found = int(cur.lastrowid or 0)
            self.cache[as_sent] = found
        return found

    def reset(self) -> None:
        self.cache.clear()


type Refs = tuple[int | None, int | None, int | None]  # registry, cause, snapshot ids
_N_REG: Final = len(REGISTRY_KEYS)
_N_CAUSE: Final = len(CAUSE_KEYS)
_NO_REGISTRY: Final = (None,) * _N_REG
_NO_CAUSE: Final = (None,) * _N_CAUSE
_NO_SNAP: Final = (None,) * len(SNAP_KEYS)


class Ids:
    """Every lookup table's manager; the store's (``Store.ids``)."""

    def __init__(self) -> None:
        self.event_types = TextIds("event_types", "event_type")
        self.strings = TextIds("strings", "value")
        self.entities = EntityIds(self.strings)
        self.attributes = AttributeIds()
        self.registry = TupleIds("registry", REGISTRY_KEYS)
        self.causes = TupleIds("causes", CAUSE_KEYS)
        self.snapshots = TupleIds("snapshots", SNAP_KEYS)
        # The three ids of an event's registry, cause and snapshot fields together: they
        # repeat for an entity. Keyed by the fields' JSON, which is cheaper to hash and
        # compare than a tuple of 19 (and to pass between processes).
        self.refs_cache: dict[bytes, Refs] = {}

    def refs(self, conn: sqlite3.Connection, fields_json: bytes) -> Refs:
        """(registry id, cause id, snapshot id) of an event's fields (REGISTRY_KEYS +
        CAUSE_KEYS + SNAP_KEYS, as a JSON array); None where all of a part are None."""
        found = self.refs_cache.get(fields_json)
        if found is None:
            # A list inside (the labels) is hashable as a tuple, and stored as JSON.
            fields = tuple(
                tuple(v) if isinstance(v, list) else v for v in orjson.loads(fields_json)
            )
            registry = fields[:_N_REG]
            cause = fields[_N_REG : _N_REG + _N_CAUSE]
            snap = fields[_N_REG + _N_CAUSE :]
            found = (
                None if registry == _NO_REGISTRY else self.registry.get_or_add(conn, registry),
                None if cause == _NO_CAUSE else self.causes.get_or_add(conn, cause),
                None if snap == _NO_SNAP else self.snapshots.get_or_add(conn, snap),
            )
            self.refs_cache[fields_json] = found
        return found

    def _caches(self) -> tuple[tuple[dict[Any, Any], int], ...]:
        """Each cache with its size limit."""
        return (
            (self.event_types.cache, CACHE_LIMIT),
            (self.entities.cache, CACHE_LIMIT),
            (self.strings.cache, CACHE_LIMIT),
            (self.attributes.cache, WIDE_CACHE_LIMIT),
            (self.registry.cache, WIDE_CACHE_LIMIT),
            (self.causes.cache, WIDE_CACHE_LIMIT),
            (self.snapshots.cache, WIDE_CACHE_LIMIT),
            (self.refs_cache, WIDE_CACHE_LIMIT),
        )

    def trim(self) -> None:
        """Drop a cache grown past its limit (between batches)."""
        for cache, limit in self._caches():
            if len(cache) > limit:
                cache.clear()

    def reset(self) -> None:
        for cache, _ in self._caches():
            cache.clear()


def entity_ref(conn: sqlite3.Connection, entity_id: str) -> int | None:
    """The entity's interned id, or None if no event of it was ever stored."""
    row = conn.execute("SELECT id FROM entities WHERE entity_id = ?", (entity_id,)).fetchone()
    return None if row is None else int(row[0])
