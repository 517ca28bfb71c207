"""Event rows, from the fast path's structs (``build_rows``) or from dicts (``dict_row``).

Both give the same rows (tests/addon/test_ingest_paths.py compares the stored result).
``build_rows`` is the ingest's hot loop, reading msgspec structs: attribute access
and one C-level ``attrgetter`` instead of dozens of ``dict.get`` calls, one cache dict
per dimension table (no tuple key per lookup), and the per-minute keys counted once per
batch by ``Counter`` in C. It gets dimension ids from a ``Dims``: the writer's, which
looks misses up in SQLite, or the decode worker's (prepare.py), which stands in
placeholders for the writer to fill.
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
import sqlite3
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from ..store.codec import TO_BASE32, TO_BASE32_BYTES, ULID_RE, encode_context
from ..store.ids import CAUSE_KEYS, NUMBERISH as numberish, REGISTRY_KEYS, SNAP_KEYS, Key, lookup
from .schema import parse_time_us
from .wire import Decoded

if TYPE_CHECKING:
    from .service import Ingestor

_US_PER_MIN: Final = 60_000_000
_CACHE_LIMIT: Final = 100_000
_LABELS: Final = REGISTRY_KEYS.index("labels")
_COMBO_KEYS: Final = (*REGISTRY_KEYS, *CAUSE_KEYS, *SNAP_KEYS)
_COMBO: Final = attrgetter(*_COMBO_KEYS)


def intern(conn: sqlite3.Connection, cache: dict[Any, int], table: str, value: Any) -> int:
    """Id of a dimension value, through the table's cache (misses go to SQLite)."""
    found = cache.get(value)
    if found is None:
        found = lookup(conn, table, value)
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[value] = found
    return found


class Dims(Protocol):
    """Dimension ids for ``build_rows``: caches it reads directly, and what a miss costs."""

    text_ids: tuple[dict[Any, int], dict[Any, int], dict[Any, int]]
    combos: dict[tuple[Any, ...], tuple[Any, Any, Any]]

    def intern(self, cache: dict[Any, int], table: str, value: Any) -> int: ...

    def refs(self, combo: tuple[Any, ...]) -> tuple[Any, Any, Any]: ...

    def attributes_ref(self, attrs: dict[str, Any]) -> int: ...


class StoreDims:
    """The writer's ``Dims``: the ingestor's caches, misses looked up (or added) in SQLite."""

    __slots__ = ("combos", "conn", "ing", "text_ids")

    def __init__(self, ing: Ingestor, conn: sqlite3.Connection) -> None:
        self.ing = ing
        self.conn = conn
        self.text_ids = ing.text_ids
        self.combos = ing.combos

    def intern(self, cache: dict[Any, int], table: str, value: Any) -> int:
        return intern(self.conn, cache, table, value)

    def refs(self, combo: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        return self.ing.refs(self.conn, combo)

    def attributes_ref(self, attrs: dict[str, Any]) -> int:
        return self.ing.attributes_ref(self.conn, attrs)


def build_rows(dims: Dims, decoded: Decoded, keys: Counter[Key]) -> list[tuple[Any, ...]]:
    types, entities, strings = dims.text_ids
    combos = dims.combos
    attributes = dims.attributes_ref
    missing = dims.intern
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    counted: list[Key] = []
    count = counted.append
    for ev, t, ago in zip(decoded.batch.events, decoded.times, decoded.agos, strict=True):
        event_type = ev.event_type
        type_id = types.get(event_type) or missing(types, "event_types", event_type)
        entity_id = ev.entity_id
        if entity_id is None:
            entity = None
            domain = ev.domain or None
        else:
            entity = entities.get(entity_id) or missing(entities, "entities", entity_id)
            domain = ev.domain or entity_id.partition(".")[0]
        domain_ref = None if domain is None else (
            strings.get(domain) or missing(strings, "strings", domain)
        )  # fmt: skip
        count((t // _US_PER_MIN, type_id, entity or 0, domain_ref or 0))
        # Registry, cause and snapshot fields repeat for an entity: one cached lookup.
        combo = _COMBO(ev)
        try:
            refs = combos.get(combo)
        except TypeError:  # labels is a list: not hashable
            combo = (*combo[:_LABELS], tuple(combo[_LABELS]), *combo[_LABELS + 1 :])
            refs = combos.get(combo)
        if refs is None:
            refs = dims.refs(combo)
        context_id = ev.context_id
        if len(context_id) == 26 and ULID_RE.match(context_id):
            # ASCII (the pattern matched), so bytes.translate gives the same digits.
            context: bytes | str | None = int(
                context_id.encode().translate(TO_BASE32_BYTES), 32
            ).to_bytes(16)
        else:
            context = encode_context(context_id)
        state: Any = ev.state
        # Interned unless number-like (an empty state is interned too, as in dict_row).
        if state is not None and not numberish(state):
            state = strings.get(state) or missing(strings, "strings", state)
        old_state: Any = ev.old_state
        if old_state is not None and not numberish(old_state):
            old_state = strings.get(old_state) or missing(strings, "strings", old_state)
        user = ev.context_user_id
        parent = ev.context_parent_id
        numeric = ev.numeric_value
        prev = ev.prev_state_seconds
        attrs = ev.attributes
        data = ev.data
        if ev.last_reported is not None:
            data = with_last_reported(data, ev.last_reported)
        append(
            (
                t,
                type_id,
                entity,
                domain_ref,
                0 if ev.origin == "LOCAL" else 1,
                context,
                None if user is None else missing(strings, "strings", user),
                None if parent is None else encode_context(parent),
                state,
                old_state,
                None if numeric is None else float(numeric),
                ago,
                None if prev is None else float(prev),
                None if attrs is None else attributes(attrs),
                None if data is None else orjson.dumps(data).decode(),
                *refs,
            )
        )
    keys.update(counted)
    return rows


def dict_row(
    ing: Ingestor, conn: sqlite3.Connection, ev: dict[str, Any], keys: Counter[Key]
) -> tuple[Any, ...]:
    """One row from an event dict that check_batch validated (the slow path, write_batch)."""
    get = ev.get
    types, entities, strings = ing.text_ids
    time_fired = ev["time_fired"]
    t = parse_time_us(time_fired)
    assert t is not None  # validated before
    event_type = ev["event_type"]
    type_id = types.get(event_type) or intern(conn, types, "event_types", event_type)
    entity_id = get("entity_id")
    entity = None if entity_id is None else (
        entities.get(entity_id) or intern(conn, entities, "entities", entity_id)
    )  # fmt: skip
    domain = get("domain") or (None if entity_id is None else entity_id.partition(".")[0])
    domain_ref = None if domain is None else (
        strings.get(domain) or intern(conn, strings, "strings", domain)
    )  # fmt: skip
    keys[(t // _US_PER_MIN, type_id, entity or 0, domain_ref or 0)] += 1
    # Registry, cause and snapshot fields repeat for an entity: one cached lookup.
    combo: tuple[Any, ...] = tuple(map(get, _COMBO_KEYS))
    try:
        refs = ing.combos.get(combo)
    except TypeError:  # labels is a list: not hashable
        combo = (*combo[:_LABELS], tuple(combo[_LABELS]), *combo[_LABELS + 1 :])
        refs = ing.combos.get(combo)
    if refs is None:
        refs = ing.refs(conn, combo)
    context_id = ev["context_id"]
    if len(context_id) == 26 and ULID_RE.match(context_id):
        context: bytes | str | None = int(context_id.translate(TO_BASE32), 32).to_bytes(16)
    else:
        context = encode_context(context_id)
    user = get("context_user_id")
    state = get("state")
    if state is not None and not (state and numberish(state)):
        state = strings.get(state) or intern(conn, strings, "strings", state)
    old_state = get("old_state")
    if old_state is not None and not (old_state and numberish(old_state)):
        old_state = strings.get(old_state) or intern(conn, strings, "strings", old_state)
    last_changed = get("last_changed")
    numeric = get("numeric_value")
    prev = get("prev_state_seconds")
    attrs = get("attributes")
    data = get("data")
    if (reported := get("last_reported")) is not None:
        data = with_last_reported(data, reported)
    parent = get("context_parent_id")
    return (
        t,
        type_id,
        entity,
        domain_ref,
        0 if ev["origin"] == "LOCAL" else 1,
        context,
        None if user is None else intern(conn, strings, "strings", user),
        None if parent is None else encode_context(parent),
        state,
        old_state,
        None if numeric is None else float(numeric),
        0 if last_changed == time_fired else _ago(t, last_changed),
        None if prev is None else float(prev),
        None if attrs is None else ing.attributes_ref(conn, attrs),
        None if data is None else orjson.dumps(data).decode(),
        *refs,
    )


def with_last_reported(data: dict[str, Any] | None, last_reported: str) -> dict[str, Any]:
    """A state report's time is kept in the row's data, where Home Assistant's own
    state_reported event data carries it (it is no column: most rows have none)."""
    return {**(data or {}), "last_reported": last_reported}


def _ago(t: int, last_changed: str | None) -> int | None:
    if last_changed is None:
        return None
    changed = parse_time_us(last_changed)
    return None if changed is None else t - changed
