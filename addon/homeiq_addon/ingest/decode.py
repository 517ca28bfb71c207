"""A request body to a validated batch, as the columns of its rows minus the ids.

``decode_batch`` is the one way in: msgspec decodes the body into ``contract.Batch`` (the
types check every rule they can express, in C); then the rules a type cannot express
(``contract.parse_time_us``, ``STATE_EVENT_TYPES``, ``MAX_NESTING``, an ``Event.entity``
within the batch's ``entities`` and no field given twice) are checked once, naming the
event; an event that refers to an entity gets its fields, as if it had carried them; and
everything of the rows that needs no id is built: times in
microseconds, context ids as bytes, ``data`` and ``attributes`` as JSON, and each lookup
value (event type, entity, strings, states, attribute set, registry/cause/snapshot
fields) as its batch's distinct values plus every event's index into them. The writer
turns those into ids (rows.py). Big bodies are decoded by the decode worker (worker.py),
the rest on the writer thread.

A refusal names the field first and says what was expected, in the contract's words:
``errors.InvalidBatch("events[0].numeric_value: expected finite number")``, the text
being the field's ``Meta(description=...)``; a body that is no JSON at all gets
``errors.InvalidJson("body: malformed JSON: ...")`` with orjson's reason (orjson is the
parser that writes the stored JSON, so it decides what is malformed).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import attrgetter
import re
from typing import Any, Final, cast

import msgspec
import orjson

from ..contract import (
    ENTITY_FIELDS,
    EVENTS_EXPECTED,
    MAX_EVENTS,
    STATE_EVENT_TYPES,
    TIME_EXPECTED,
    Batch,
    EntityFacts,
    Event,
    EventColumns,
    Source,
    parse_time_us,
)
from ..errors import HomeIQError, InvalidBatch, InvalidJson
from ..store.codec import TO_BASE32_BYTES, ULID_RE, encode_context, ulid_near
from ..store.ref_keys import CAUSE_KEYS, REGISTRY_KEYS, SNAP_KEYS
from ..times import US_PER_MINUTE

_DECODER: Final = msgspec.json.Decoder(Batch)
_REF_FIELDS: Final = attrgetter(*REGISTRY_KEYS, *CAUSE_KEYS, *SNAP_KEYS)
_LABELS: Final = REGISTRY_KEYS.index("labels")
_NO_REFS: Final = (None,) * (len(REGISTRY_KEYS) + len(CAUSE_KEYS) + len(SNAP_KEYS))
# Where the cause's fields are in a refs tuple (_REF_FIELDS), after the registry's.
_CAUSE_AT: Final = len(REGISTRY_KEYS)
_SNAP_AT: Final = len(REGISTRY_KEYS) + len(CAUSE_KEYS)
_NO_REGISTRY: Final = (None,) * len(REGISTRY_KEYS)
_NO_CAUSE: Final = (None,) * len(CAUSE_KEYS)
_NO_SNAP: Final = (None,) * len(SNAP_KEYS)
_ENTITY_REFS: Final = attrgetter(*REGISTRY_KEYS, *CAUSE_KEYS)


@dataclass(slots=True)
class DecodedBatch:
    """A batch that keeps every rule of the contract: its rows, but for the ids.

    The lists hold one entry per event, except the lookup values: each is a list of the
    batch's distinct values, with every event's index into it (``..._at``), 1 for the
    first value, 0 for none (for ``refs``: all fields None).
    """

    batch_id: str
    source: tuple[str, str]  # instance id, integration version
    times: list[int]  # time_fired, UTC epoch µs
    origins: list[int]  # 0 LOCAL, 1 REMOTE
    contexts: list[bytes | str | None]  # store/codec.py (never None)
    parents: list[bytes | str | None]
    numbers: list[float | None]
    agos: list[int | None]  # time_fired - last_changed in µs
    prev_seconds: list[float | None]
    data: list[str | None]  # JSON, with last_reported when sent
    event_types: list[str]
    event_type_at: list[int]
    entities: list[str]
    entity_at: list[int]
    strings: list[str]  # domains and user ids
    domain_at: list[int]  # 0 where it is the entity's own (the counts' keys have it)
    user_at: list[int]
    states: list[str]  # states and old states
    state_at: list[int]
    old_state_at: list[int]
    attributes: list[bytes]  # JSON as sent
    attributes_at: list[int]
    refs: list[bytes]  # registry, cause, snapshot fields as JSON (store/ids.py Ids.refs)
    refs_at: list[int]
    # How many events of each (minute, event type, entity, domain), the last three as
    # indexes like the ``..._at`` ones: one entry per distinct key.
    key_minutes: list[int]
    key_event_type_at: list[int]
    key_entity_at: list[int]
    key_domain_at: list[int]
    key_counts: list[int]


def decode_batch(body: bytes) -> DecodedBatch:
    """The body as a validated batch; raises InvalidJson or InvalidBatch naming the field."""
    try:
        batch = _DECODER.decode(body)
    except msgspec.ValidationError as err:
        raise _malformed(body) or _invalid(str(err)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as err:
        # UnicodeDecodeError: bytes that are no UTF-8; RecursionError: nested deeper
        # than msgspec goes (orjson names both).
        raise _malformed(body) or InvalidJson(f"body: malformed JSON: {err}") from None
    try:
        if batch.columns:
            if batch.events:
                raise InvalidBatch("columns: not allowed with events")
            return _from_columns(batch)
        if not batch.events:
            raise InvalidBatch(f"events: {EVENTS_EXPECTED}")
        return _from_events(batch)
    except _TooDeep as err:
        raise _malformed(body) or InvalidBatch(f"{err.path}: {_NESTING}") from None


class _TooDeep(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


# Where an event's field is in the body, for an error: "events[3].state" or, for events
# sent as columns, "columns[0].state[3]".
type FieldPath = Callable[[int, str], str]


def _event_path(i: int, field: str) -> str:
    return f"events[{i}].{field}"


def _json(value: dict[str, Any], path: str) -> bytes:
    """``data`` or ``attributes`` as the store writes them (nested at most MAX_NESTING);
    `path` names the field in an error."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    try:
        # An integer beyond 64 bits: stored as the float orjson reads it as (as a batch
        # read by orjson always was); any other failure is the nesting.
        return orjson.dumps(orjson.loads(msgspec.json.encode(value)))
    except (orjson.JSONEncodeError, orjson.JSONDecodeError, RecursionError):
        raise _TooDeep(path) from None


# Column by column, in C where it can be (attrgetter, zip, map, dict.fromkeys): a loop
# over the events with a dozen appends each cost twice as much.
_COLUMNS_NAMES: Final = (
    "time_fired", "last_changed", "last_reported", "event_type", "entity_id", "domain",
    "context_user_id", "state", "old_state", "origin", "context_id", "context_parent_id",
    "numeric_value", "prev_state_seconds", "data", "attributes", "entity",
)  # fmt: skip
_COLUMNS: Final = attrgetter(*_COLUMNS_NAMES)
_ORIGIN: Final = {"LOCAL": 0, "REMOTE": 1}
_BAD_TIME: Final = 1 << 80  # no difference of two accepted times


def _indexed[T](*columns: Sequence[T | None]) -> tuple[list[T], list[list[int]]]:
    """The distinct values of the columns (None left out), and each column as indexes
    into them: 1 for the first, 0 for None."""
    distinct = dict.fromkeys(chain(*columns))
    distinct.pop(None, None)
    index: dict[T | None, int] = {None: 0}
    index.update(zip(distinct, range(1, len(distinct) + 1), strict=True))
    at = index.__getitem__
    return list(distinct), [list(map(at, column)) for column in columns]  # type: ignore[arg-type]


def _ago(t: int, fired: str, changed: str | None) -> int | None:
    if changed is None:
        return None
    if changed == fired:
        return 0
    c = parse_time_us(changed)
    return _BAD_TIME if c is None else t - c


def _from_events(batch: Batch) -> DecodedBatch:
    events = batch.events
    columns = zip(*map(_COLUMNS, events), strict=True)
    fields = [
        f if f[_LABELS] is None else (*f[:_LABELS], tuple(f[_LABELS]), *f[_LABELS + 1 :])
        for f in map(_REF_FIELDS, events)
    ]
    return _decoded(batch, tuple(columns), fields, _event_path)


# EventColumns' columns in _COLUMNS' order, None for the fields it has no column for
# (ENTITY_FIELDS: the entity's, by reference).
_GIVEN_COLUMNS: Final = tuple(
    name if name in EventColumns.__struct_fields__ else None for name in _COLUMNS_NAMES
)
_REF_COLUMNS: Final = tuple(
    name if name in EventColumns.__struct_fields__ else None
    for name in (*REGISTRY_KEYS, *CAUSE_KEYS, *SNAP_KEYS)
)
_OWN_COLUMNS: Final = tuple(name for name in _REF_COLUMNS if name is not None)


def _from_columns(batch: Batch) -> DecodedBatch:
    """The blocks joined into one column per field, as _from_events has them."""
    blocks = batch.columns
    sizes = []
    for k, block in enumerate(blocks):
        size = len(block.time_fired)
        for name in EventColumns.__struct_fields__:
            column = getattr(block, name)
            if column is not None and len(column) != size:
                raise InvalidBatch(
                    f"columns[{k}].{name}: expected {size} values, as many as time_fired"
                )
        sizes.append(size)
    total = sum(sizes)
    if not 0 < total <= MAX_EVENTS:
        raise InvalidBatch(f"columns: {EVENTS_EXPECTED}")
    nulls = [(None,) * size for size in sizes]

    def joined(name: str | None) -> tuple[Any, ...]:
        if name is None:
            return (None,) * total
        return tuple(
            chain.from_iterable(
                empty if (column := getattr(block, name)) is None else column
                for block, empty in zip(blocks, nulls, strict=True)
            )
        )

    columns = tuple(map(joined, _GIVEN_COLUMNS))
    if any(getattr(block, name) is not None for block in blocks for name in _OWN_COLUMNS):
        fields = list(zip(*map(joined, _REF_COLUMNS), strict=True))
    else:  # the same (empty) tuple for every event: its entity gives them all
        fields = [_NO_REFS] * total
    starts = [0, *accumulate(sizes)]

    def path(i: int, field: str) -> str:
        # The last block starting at or before i: it holds i (a block without events
        # starts where the next one does, so it is never the last).
        k = bisect_right(starts, i) - 1
        return f"columns[{k}].{field}[{i - starts[k]}]"

    return _decoded(batch, columns, fields, path)


def _decoded(
    batch: Batch, columns: tuple[Sequence[Any], ...], fields: list[tuple[Any, ...]], at: FieldPath
) -> DecodedBatch:
    """The rows of the events given as columns (_COLUMNS' order) and each event's registry,
    cause and snapshot fields (_REF_FIELDS' order); `at` names a field in an error."""
    (
        fired, changed, reported, event_types, entity_ids, domains, users, states,
        old_states, origins, contexts, parents, numbers, prev_seconds, data, attributes,
        entity_refs,
    ) = columns  # fmt: skip
    parsed = list(map(parse_time_us, fired))
    if None in parsed:
        raise InvalidBatch(f"{at(parsed.index(None), 'time_fired')}: {TIME_EXPECTED}")
    times = cast("list[int]", parsed)
    agos = list(map(_ago, times, fired, changed))
    if _BAD_TIME in agos:
        raise InvalidBatch(f"{at(agos.index(_BAD_TIME), 'last_changed')}: {TIME_EXPECTED}")
    attributes_json = [
        None if a is None else _json(a, at(i, "attributes")) for i, a in enumerate(attributes)
    ]
    if entity_refs.count(None) != len(entity_refs):
        referred_ids: list[str | None] = list(entity_ids)
        referred_domains: list[str | None] = list(domains)
        _refer_to_entities(
            batch,
            entity_refs,
            entity_ids=referred_ids,
            domains=referred_domains,
            attributes=attributes_json,
            fields=fields,
            at=at,
        )
        entity_ids, domains = tuple(referred_ids), tuple(referred_domains)
    if None in entity_ids:
        for i, (event_type, entity_id) in enumerate(zip(event_types, entity_ids, strict=True)):
            if entity_id is None and event_type in STATE_EVENT_TYPES:
                # Events as columns name their entity by reference only.
                field = "entity_id" if batch.events else "entity"
                raise InvalidBatch(f"{at(i, field)}: required for state events")
    event_data: list[dict[str, Any] | None] = list(data)
    if reported.count(None) != len(reported):
        for i, when in enumerate(reported):
            if when is None:
                continue
            if parse_time_us(when) is None:
                raise InvalidBatch(f"{at(i, 'last_reported')}: {TIME_EXPECTED}")
            # A state report's time is kept in the row's data, where Home Assistant's
            # own state_reported event data carries it (no column: most rows have none).
            event_data[i] = {**(event_data[i] or {}), "last_reported": when}
    data_json = [
        None if d is None else _json(d, at(i, "data")).decode() for i, d in enumerate(event_data)
    ]
    domains_or_derived = [
        d or (None if e is None else e.partition(".")[0])
        for d, e in zip(domains, entity_ids, strict=True)
    ]
    # A row keeps no domain that its entity's id says (store/ids.py EntityIds).
    stored_domains = [
        None if e is not None and d == e.partition(".")[0] else d
        for d, e in zip(domains_or_derived, entity_ids, strict=True)
    ]
    distinct_types, (type_at,) = _indexed(event_types)
    distinct_entities, (entity_at,) = _indexed(entity_ids)
    distinct_strings, (domain_at, user_at, stored_domain_at) = _indexed(
        domains_or_derived, users, stored_domains
    )
    distinct_states, (state_at, old_state_at) = _indexed(states, old_states)
    distinct_attributes, (attributes_at,) = _indexed(attributes_json)
    distinct_refs, (refs_at,) = _indexed([None if f == _NO_REFS else f for f in fields])
    counted = Counter(
        zip([t // US_PER_MINUTE for t in times], type_at, entity_at, domain_at, strict=True)
    )
    key_minutes, key_types, key_entities, key_domains = (
        list(column) for column in zip(*counted, strict=True)
    )
    return DecodedBatch(
        batch_id=batch.batch_id,
        source=(batch.source.instance_id, batch.source.integration_version),
        times=times,
        origins=list(map(_ORIGIN.__getitem__, origins)),
        contexts=[
            # ASCII when the pattern matched, so bytes.translate gives the same digits.
            ulid_near(int(c.encode().translate(TO_BASE32_BYTES), 32), t)
            if len(c) == 26 and ULID_RE.match(c)
            else encode_context(c)
            for c, t in zip(contexts, times, strict=True)
        ],
        parents=[None if p is None else encode_context(p) for p in parents],
        numbers=[None if x is None else float(x) for x in numbers],
        agos=agos,
        prev_seconds=[None if x is None else float(x) for x in prev_seconds],
        data=data_json,
        event_types=distinct_types,
        event_type_at=type_at,
        entities=distinct_entities,
        entity_at=entity_at,
        strings=distinct_strings,
        domain_at=stored_domain_at,
        user_at=user_at,
        states=distinct_states,
        state_at=state_at,
        old_state_at=old_state_at,
        attributes=distinct_attributes,
        attributes_at=attributes_at,
        refs=[orjson.dumps(f) for f in distinct_refs],
        refs_at=refs_at,
        key_minutes=key_minutes,
        key_event_type_at=key_types,
        key_entity_at=key_entities,
        key_domain_at=key_domains,
        key_counts=list(counted.values()),
    )


def _refer_to_entities(
    batch: Batch,
    refs: Sequence[int | None],
    *,
    entity_ids: list[str | None],
    domains: list[str | None],
    attributes: list[bytes | None],
    fields: list[tuple[Any, ...]],
    at: FieldPath,
) -> None:
    """Give each event that refers to an entity (Event.entity) that entity's fields, in
    the columns as if the event had carried them; its own cause, if any, stays."""
    entities = batch.entities
    ids = [f.entity_id for f in entities]
    entity_domains = [f.domain for f in entities]
    entity_attributes = [
        None if f.attributes is None else _json(f.attributes, f"entities[{k}].attributes")
        for k, f in enumerate(entities)
    ]
    registry: list[tuple[Any, ...]] = []
    causes: list[tuple[Any, ...]] = []
    for f in map(_ENTITY_REFS, entities):
        labels = f[_LABELS]
        registry.append(
            (*f[:_LABELS], None if labels is None else tuple(labels), *f[_LABELS + 1 : _CAUSE_AT])
        )
        causes.append(f[_CAUSE_AT:])
    count = len(entities)
    # Column by column, as _decoded does: a loop with a dozen steps per event cost more
    # than the bytes the references save.
    referring = [i for i, k in enumerate(refs) if k is not None]
    if (top := max(k for k in refs if k is not None)) >= count:
        i = refs.index(top)
        raise InvalidBatch(
            f"{at(i, 'entity')}: expected index into the batch's entities (0 to {count - 1})"
            if count
            else f"{at(i, 'entity')}: expected index into the batch's entities (it has none)"
        )
    # Only `events` can carry an entity's fields themselves: columns have none (the
    # contract has no such column), so theirs need no look.
    given = [
        i
        for i in (referring if batch.events else ())
        if entity_ids[i] is not None
        or domains[i] is not None
        or attributes[i] is not None
        or fields[i][:_CAUSE_AT] != _NO_REGISTRY
    ]
    if given:
        i = given[0]
        name = next(n for n in ENTITY_FIELDS if getattr(batch.events[i], n) is not None)
        raise InvalidBatch(f"{at(i, name)}: not allowed with entity")
    entity_ids[:] = [e if k is None else ids[k] for e, k in zip(entity_ids, refs, strict=True)]
    domains[:] = [d if k is None else entity_domains[k] for d, k in zip(domains, refs, strict=True)]
    attributes[:] = [
        a if k is None else entity_attributes[k] for a, k in zip(attributes, refs, strict=True)
    ]
    # An event's refs: its entity's registry fields, its own cause or else its entity's,
    # its own snapshot; built once per distinct (entity, cause and snapshot).
    built: dict[tuple[int, tuple[Any, ...]], tuple[Any, ...]] = {}

    def refs_of(k: int, own: tuple[Any, ...]) -> tuple[Any, ...]:
        cause, snapshot = own[: len(_NO_CAUSE)], own[len(_NO_CAUSE) :]
        full = (*registry[k], *(causes[k] if cause == _NO_CAUSE else cause), *snapshot)
        built[k, own] = full
        return full

    if fields.count(_NO_REFS) == len(fields):  # no event names its own cause or snapshot
        default = [(*registry[k], *causes[k], *_NO_SNAP) for k in range(count)]
        fields[:] = [f if k is None else default[k] for f, k in zip(fields, refs, strict=True)]
        return
    fields[:] = [
        f if k is None else built.get((k, tail := f[_CAUSE_AT:])) or refs_of(k, tail)
        for f, k in zip(fields, refs, strict=True)
    ]


# --- naming what is wrong -------------------------------------------------------------


def _malformed(body: bytes) -> HomeIQError | None:
    """InvalidJson when orjson cannot read the body at all (that comes first)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as err:
        return InvalidJson(f"body: malformed JSON: {err}")
    return None


def _described(struct: type[msgspec.Struct]) -> dict[str, tuple[str | None, Any]]:
    """Each field of a struct: (its description, the struct inside it if any)."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    out: dict[str, tuple[str | None, Any]] = {}
    for field in info.fields:
        t: Any = field.type
        if isinstance(t, msgspec.inspect.UnionType):  # X | None
            t = next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType))
        description = None
        if isinstance(t, msgspec.inspect.Metadata):
            description = (t.extra_json_schema or {}).get("description")
            t = t.type
        if isinstance(t, msgspec.inspect.ListType):
            t = t.item_type
        inner = t.cls if isinstance(t, msgspec.inspect.StructType) else None
        out[field.name] = (description, inner)
    return out


_FIELDS: Final = {
    struct: _described(struct) for struct in (Batch, Source, Event, EntityFacts, EventColumns)
}
_NESTING: Final = _FIELDS[Event]["data"][0]  # the same for attributes
_AT: Final = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.DOTALL)
_STEP: Final = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\.\.\.)\]")
_FIELD_NAMED: Final = re.compile(r"^Object (missing required|contains unknown) field `(.*)`$")


def _invalid(error: str) -> InvalidBatch:
    """InvalidBatch from msgspec's error: its path, cut at the field that failed, and
    that field's description."""
    match = _AT.match(error)
    assert match is not None
    what, steps = match.group(1), match.group(2) or ""
    path = ""
    struct: Any = Batch
    description: str | None = None
    found = list(_STEP.finditer(steps))
    for n, step in enumerate(found):
        name, index = step.groups()
        if name is not None:
            if struct is None or name not in _FIELDS[struct]:
                break
            columns = struct is EventColumns
            description, struct = _FIELDS[struct][name]
            path += f".{name}" if path else name
            if struct is None:
                # Deeper down (a list's item, a key in data): the field is named, and for
                # a column the event too (its index in the block).
                if columns and n + 1 < len(found) and found[n + 1].group(2) is not None:
                    path += f"[{found[n + 1].group(2)}]"
                break
        else:
            path += f"[{index}]"
            description = None
    named = _FIELD_NAMED.match(what)
    if named is not None:
        field = named.group(2)
        path = f"{path}.{field}" if path else field
        missing = named.group(1) == "missing required"
        return InvalidBatch(
            f"{path}: {'required key not provided' if missing else 'extra keys not allowed'}"
        )
    return InvalidBatch(f"{path or 'body'}: {description or 'expected a JSON object'}")
