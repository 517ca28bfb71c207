"""The one validator of a batch (ingest/decode.py): it accepts exactly what the contract's
rules allow, and a refusal names the field that broke one."""

from __future__ import annotations

import copy
from datetime import datetime
import math
import random
import re
from typing import Any

import orjson
import pytest

from homeiq_addon.contract import (
    CAUSES,
    ENTITY_FIELDS,
    MAX_EVENTS,
    MAX_NESTING,
    TIME_EXPECTED,
    Event,
    EventColumns,
)
from homeiq_addon.errors import InvalidBatch, InvalidJson
from homeiq_addon.ingest.decode import decode_batch
from homeiq_addon.store.codec import decode_context, encode_context, ulid_near
from tests.addon.factory import batch, service_event, state_event, with_columns, with_entities

# Values of every JSON shape and the edges of each rule.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**53, 2**53 + 1, 2**64, 1.5, float("nan"), float("inf"),
    "", "x", "x" * 64, "x" * 65, "x" * 255, "x" * 256, "LOCAL", "REMOTE", "local", "user",
    "automation", "light.kitchen", "Light.Kitchen", "light.", "2026-11-22T10:00:00+00:00",
    "2026-11-22T10:00:00", "2026-11-22", "20261122T100000Z", [], ["a"], ["a", 1], {}, {"a": 1},
    {1: "a"}, [["nested"]],
    # The ends of the accepted time range, and beyond.
    "1970-01-01T00:00:00+00:00", "1970-01-01T00:59:59+01:00", "2199-12-31T23:59:59.999999Z",
    "2200-01-01T00:00:00+00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00",
]  # fmt: skip

# The contract's rules written out independently of the add-on's code, as the test's
# oracle: field -> (required, whether a value is allowed; None is allowed unless required).
_ENTITY_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


def _text(v: Any) -> bool:
    return type(v) is str and len(v) <= 255


def _id64(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= 64


def _number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or (type(v) is int and abs(v) <= 2**53)


def _time(v: Any) -> bool:
    if type(v) is not str:
        return False
    try:
        parsed = datetime.fromisoformat(v)
        return parsed.tzinfo is not None and 0 <= parsed.timestamp() < 7258118400
    except (ValueError, OverflowError):
        return False


def _object(v: Any) -> bool:
    return type(v) is dict


_TEXT_FIELDS = (
    "area_id", "area", "floor", "device_id", "device_name", "device_manufacturer",
    "device_model", "device_class", "state_class", "unit", "friendly_name", "cause_name",
    "cause_id", "weather_condition",
)  # fmt: skip
_RULES: dict[str, tuple[bool, Any]] = {
    "time_fired": (True, _time),
    "event_type": (True, _id64),
    "origin": (True, lambda v: v in ("LOCAL", "REMOTE")),
    "context_id": (True, _id64),
    "context_user_id": (False, _id64),
    "context_parent_id": (False, _id64),
    "data": (False, _object),
    "entity_id": (False, lambda v: _text(v) and _ENTITY_ID.match(v) is not None),
    "domain": (False, _text),
    "state": (False, _text),
    "old_state": (False, _text),
    "numeric_value": (False, _number),
    "last_changed": (False, _time),
    "last_reported": (False, _time),
    "prev_state_seconds": (False, _number),
    "attributes": (False, _object),
    **dict.fromkeys(_TEXT_FIELDS, (False, _text)),
    "labels": (False, lambda v: type(v) is list and len(v) <= 100 and all(map(_text, v))),
    "cause": (False, lambda v: v in CAUSES),
    "outdoor_temperature": (False, _number),
    "sun_elevation": (False, _number),
    "people_home": (False, lambda v: type(v) is int and 0 <= v <= 1_000_000),
    # An index into the batch's entities: checked in _event_ok, which knows how many.
    "entity": (False, lambda v: type(v) is int),
}


def _event_ok(event: dict[str, Any], entities: int) -> bool:
    for name, value in event.items():
        if name not in _RULES:
            return False
        required, rule = _RULES[name]
        if not ((value is None and not required) or (value is not None and rule(value))):
            return False
    if any(event.get(name) is None for name, (required, _) in _RULES.items() if required):
        return False
    if (entity := event.get("entity")) is not None:
        if not 0 <= entity < entities:
            return False
        if any(event.get(name) is not None for name in ENTITY_FIELDS):
            return False  # an event that refers to an entity carries none of its fields
    state_event = event["event_type"] in ("state_changed", "state_reported")
    return not (state_event and event.get("entity_id") is None and entity is None)


_NESTING = f"expected object nested at most {MAX_NESTING} levels deep"


def test_the_oracle_covers_every_field_of_the_contract() -> None:
    assert set(_RULES) == set(Event.__struct_fields__)


def _mutations(rng: random.Random, base: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """(body, the index of the changed event)."""
    out = []
    fields = [*_RULES, "unknown_field"]
    for _ in range(3000):
        body = copy.deepcopy(base)
        index = rng.randrange(len(body["events"]))
        event = body["events"][index]
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(fields)
            if rng.random() < 0.15:
                event.pop(name, None)
            else:
                event[name] = rng.choice(ODD_VALUES)
        out.append((body, index))
    return out


def test_accepts_exactly_what_the_rules_allow_and_names_the_event() -> None:
    rng = random.Random(20261123)
    # An event with its entity's fields, one that refers to its batch's only entity, and
    # one of another type.
    referring = with_entities(batch([state_event(5)]))
    base = batch([state_event(0), referring["events"][0], service_event(1)])
    base["entities"] = referring["entities"]
    accepted = refused = 0
    for body, index in _mutations(rng, base):
        try:
            raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # 2**64 has no JSON spelling orjson writes
            continue
        sent = orjson.loads(raw)  # what the add-on receives (NaN is sent as null)
        ok = _event_ok(sent["events"][index], len(sent["entities"]))
        try:
            decoded = decode_batch(raw)
        except InvalidBatch as err:
            assert not ok, (sent, err.message)
            assert err.message.startswith(f"events[{index}]."), err.message
            refused += 1
        else:
            assert ok, sent
            assert decoded.batch_id == body["batch_id"]
            assert len(decoded.times) == 3
            accepted += 1
    # Both sides were exercised.
    assert accepted > 100
    assert refused > 100


def test_realistic_batches_are_accepted() -> None:
    body = batch([state_event(i) for i in range(20)] + [service_event(0)])
    assert len(decode_batch(orjson.dumps(body)).times) == 21


def test_events_referring_to_entities_are_what_they_would_carry() -> None:
    """Each entity's fields sent once (``entities``) decode to the same rows as the same
    events carrying them, whatever each event's own cause and snapshot."""
    user = {"context_user_id": "9f2b1c0d", "cause": "user", "cause_name": "Alice"}
    events = [
        *(state_event(i) for i in range(30)),
        state_event(3, **user),  # its own cause replaces its entity's
        state_event(4, attributes={"other": [1, {"x": None}]}),  # a second set: another entry
        state_event(5, labels=None, device_id=None, weather_condition="sunny"),
        state_event(6, cause="integration", cause_name="template", people_home=0),
        state_event(7, event_type="state_reported", last_reported=state_event(7)["time_fired"]),
        state_event(8, state=None, old_state="1.5"),  # a removal
        service_event(0),
    ]
    plain = batch(events)
    referring = with_entities(plain)
    assert all("entity_id" not in event for event in referring["events"][:30])
    assert 8 < len(referring["entities"]) < 20
    assert len(orjson.dumps(referring)) < 0.7 * len(orjson.dumps(plain))
    assert decode_batch(orjson.dumps(referring)) == decode_batch(orjson.dumps(plain))


def _varied_events() -> list[dict[str, Any]]:
    user = {"context_user_id": "9f2b1c0d", "cause": "user", "cause_name": "Alice"}
    return [
        *(state_event(i) for i in range(30)),
        state_event(3, **user),  # its own cause replaces its entity's
        state_event(4, attributes={"other": [1, {"x": None}]}),
        state_event(5, labels=None, device_id=None, weather_condition="sunny"),
        state_event(6, cause="integration", cause_name="template", people_home=0),
        state_event(7, event_type="state_reported", last_reported=state_event(7)["time_fired"]),
        state_event(8, state=None, old_state="1.5"),  # a removal
        service_event(0),
        state_event(9, context_parent_id="01JDAW3M6V2X8T9Q0RB4N5K7HD", last_changed=None),
    ]


@pytest.mark.parametrize("block", [1, 7, 100])
def test_events_as_columns_are_what_they_would_be_as_events(block: int) -> None:
    """The same events as blocks of columns decode to the same rows, in any block size,
    and take fewer bytes than even the events that refer to their entities."""
    plain = batch(_varied_events())
    referring = with_entities(plain)
    columns = with_columns(referring, block)
    assert len(columns["columns"]) == -(-len(plain["events"]) // block)
    if block > 1:
        assert len(orjson.dumps(columns)) < 0.8 * len(orjson.dumps(referring))
    assert decode_batch(orjson.dumps(columns)) == decode_batch(orjson.dumps(plain))


def test_blocks_without_events_are_nothing() -> None:
    plain = batch(_varied_events()[:5])
    columns = with_columns(with_entities(plain), 2)
    empty = {"time_fired": [], "event_type": [], "origin": [], "context_id": []}
    columns["columns"] = [empty, *columns["columns"][:2], empty, *columns["columns"][2:]]
    assert decode_batch(orjson.dumps(columns)) == decode_batch(orjson.dumps(plain))


def _column_change(name: str, at: int, value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        block = body["columns"][1]
        block.setdefault(name, [None] * len(block["time_fired"]))[at] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_column_change("state", 2, 5), "columns[1].state[2]: expected string of at most 255"),
        (_column_change("time_fired", 0, "now"), f"columns[1].time_fired[0]: {TIME_EXPECTED}"),
        (_column_change("time_fired", 0, None), f"columns[1].time_fired[0]: {TIME_EXPECTED}"),
        (
            _column_change("last_changed", 1, "1969-12-31T23:59:59+00:00"),
            f"columns[1].last_changed[1]: {TIME_EXPECTED}",
        ),
        (_column_change("last_reported", 1, "x"), f"columns[1].last_reported[1]: {TIME_EXPECTED}"),
        (_column_change("entity", 2, None), "columns[1].entity[2]: required for state events"),
        (
            _column_change("entity", 2, 99),
            "columns[1].entity[2]: expected index into the batch's entities (0 to",
        ),
        (_column_change("people_home", 0, -1), "columns[1].people_home[0]: expected integer"),
        (_column_change("cause", 0, "weather"), "columns[1].cause[0]: expected one of user"),
        (_column_change("origin", 0, "local"), "columns[1].origin[0]: expected LOCAL or REMOTE"),
        (_column_change("data", 0, [1]), "columns[1].data[0]: expected object nested"),
        (_column_change("numeric_value", 0, "1"), "columns[1].numeric_value[0]: expected finite"),
        (
            lambda body: body["columns"][1]["state"].append("x"),
            "columns[1].state: expected 3 values, as many as time_fired",
        ),
        (
            lambda body: body["columns"][1].update(numeric_value=[1.5]),
            "columns[1].numeric_value: expected 3 values, as many as time_fired",
        ),
        (
            lambda body: body["columns"][1].update(entity_id=["sensor.a"] * 3),
            "columns[1].entity_id: extra keys not allowed",
        ),
        (
            lambda body: body["columns"][1].pop("context_id"),
            "columns[1].context_id: required key not provided",
        ),
        (
            lambda body: body["columns"][1].update(state="on"),
            "columns[1].state: expected string of at most 255 characters, or null (one per",
        ),
        (
            lambda body: body.update(events=[state_event(0)]),
            "columns: not allowed with events",
        ),
        (lambda body: body.update(columns=[]), "events: expected 1 to 5000 events"),
        (lambda body: body.update(columns=[{}]), "columns[0].time_fired: required key"),
        (
            lambda body: body.update(columns=body["columns"] * (MAX_EVENTS // 9 + 1)),
            f"columns: expected 1 to {MAX_EVENTS} events, as events or as columns",
        ),
        (lambda body: body.update(columns=5), "columns: expected 1 to 5000 events"),
    ],
)
def test_a_bad_column_is_named(change: Any, message: str) -> None:
    body = with_columns(with_entities(batch([state_event(i) for i in range(9)])), 3)
    change(body)
    with pytest.raises(InvalidBatch) as err:
        decode_batch(orjson.dumps(body))
    assert err.value.message.startswith(message), err.value.message


def test_a_column_nested_too_deep_is_named() -> None:
    body = with_columns(with_entities(batch([state_event(0), service_event(1)])), 1)
    body["columns"][1]["data"] = [{"deep": "here"}]
    deep = b"[" * MAX_NESTING + b"1" + b"]" * MAX_NESTING
    with pytest.raises(InvalidBatch) as err:
        decode_batch(orjson.dumps(body).replace(b'"here"', deep))
    assert err.value.message == f"columns[1].data[0]: {_NESTING}"


def _columns_ok(block: dict[str, list[Any]], entities: int) -> bool:
    """The oracle for events sent as columns: the columns the contract names, the four
    every event has, and each event as an event would be (its nulls left out), but that
    it names its entity by reference only."""
    if not set(block) <= set(EventColumns.__struct_fields__):
        return False
    if not {"time_fired", "event_type", "origin", "context_id"} <= set(block):
        return False
    size = len(block["time_fired"])
    return all(
        _event_ok(
            {name: values[i] for name, values in block.items() if values[i] is not None}, entities
        )
        for i in range(size)
    )


def test_columns_accept_exactly_what_the_rules_allow() -> None:
    rng = random.Random(20261202)
    base = with_columns(with_entities(batch([state_event(0), state_event(1), service_event(2)])))
    fields = [*_RULES, "unknown_field"]
    accepted = refused = 0
    for _ in range(3000):
        body = copy.deepcopy(base)
        block = body["columns"][0]
        at = rng.randrange(3)
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(fields)
            if rng.random() < 0.1:
                block.pop(name, None)  # a whole column: null for every event
            else:
                block.setdefault(name, [None] * 3)[at] = rng.choice(ODD_VALUES)
        try:
            raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # 2**64 has no JSON spelling orjson writes
            continue
        sent = orjson.loads(raw)
        ok = _columns_ok(sent["columns"][0], len(sent["entities"]))
        try:
            decoded = decode_batch(raw)
        except InvalidBatch as err:
            assert not ok, (sent, err.message)
            assert err.message.startswith("columns[0]."), err.message
            refused += 1
        else:
            assert ok, sent
            assert len(decoded.times) == 3
            accepted += 1
    assert accepted > 100
    assert refused > 100


def test_a_batch_may_mix_both_forms_and_keep_unused_entities() -> None:
    plain = batch([state_event(i) for i in range(10)])
    referring = with_entities(plain)
    mixed = {
        **plain,
        "events": [*referring["events"][:5], *plain["events"][5:]],
        "entities": [*referring["entities"], {"entity_id": "sensor.unused"}],
    }
    assert decode_batch(orjson.dumps(mixed)) == decode_batch(orjson.dumps(plain))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entity": 7}, "events[1].entity: expected index into the batch's entities (0 to 1)"),
        ({"entity": -1}, "events[1].entity: expected index into the batch's entities"),
        ({"entity": "0"}, "events[1].entity: expected index into the batch's entities"),
        ({"area": "Hall"}, "events[1].area: not allowed with entity"),
        ({"entity_id": "sensor.x"}, "events[1].entity_id: not allowed with entity"),
        ({"attributes": {}}, "events[1].attributes: not allowed with entity"),
    ],
)
def test_a_bad_reference_to_an_entity_is_named(change: dict[str, Any], message: str) -> None:
    body = with_entities(batch([state_event(0), state_event(1)]))
    body["events"][1].update(change)
    with pytest.raises(InvalidBatch) as err:
        decode_batch(orjson.dumps(body))
    assert err.value.message == message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entity_id": "Sensor.X"}, "entities[1].entity_id: expected entity id like domain."),
        ({"unit": "x" * 256}, "entities[1].unit: expected string of at most 255 characters"),
        ({"colour": 1}, "entities[1].colour: extra keys not allowed"),
        ({"cause": "weather"}, "entities[1].cause: expected one of user, automation"),
        (
            {"attributes": {"a": [[[[]]]] * 1}},
            None,  # nested a little: fine
        ),
    ],
)
def test_a_bad_entity_is_named(change: dict[str, Any], message: str | None) -> None:
    body = with_entities(batch([state_event(0), state_event(1)]))
    body["entities"][1].update(change)
    if message is None:
        decode_batch(orjson.dumps(body))
        return
    with pytest.raises(InvalidBatch) as err:
        decode_batch(orjson.dumps(body))
    assert err.value.message.startswith(message), err.value.message


def test_an_entity_nested_too_deep_is_named() -> None:
    body = with_entities(batch([state_event(0)]))
    body["entities"][0]["attributes"] = {"deep": "here"}
    # {"deep": X} with X nested MAX_NESTING deep: one level too many.
    deep = b"[" * MAX_NESTING + b"1" + b"]" * MAX_NESTING
    with pytest.raises(InvalidBatch) as err:
        decode_batch(orjson.dumps(body).replace(b'"here"', deep))
    assert err.value.message == f"entities[0].attributes: {_NESTING}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_fired": "now"}, f"events[0].time_fired: {TIME_EXPECTED}"),
        ({"time_fired": None}, f"events[0].time_fired: {TIME_EXPECTED}"),
        ({"last_changed": "1969-12-31T23:59:59+00:00"}, f"events[0].last_changed: {TIME_EXPECTED}"),
        ({"last_reported": "now"}, f"events[0].last_reported: {TIME_EXPECTED}"),
        ({"numeric_value": "1"}, "events[0].numeric_value: expected finite number"),
        ({"numeric_value": 2**53 + 1}, "events[0].numeric_value: expected finite number"),
        ({"labels": ["a", 2]}, "events[0].labels: expected list of at most 100 strings"),
        ({"extra": 1}, "events[0].extra: extra keys not allowed"),
        ({"entity_id": None}, "events[0].entity_id: required for state events"),
        ({"people_home": 1.0}, "events[0].people_home: expected integer from 0 to 1000000"),
        (
            {"data": [1]},
            f"events[0].data: expected object nested at most {MAX_NESTING} levels deep",
        ),
    ],
)
def test_errors_name_the_field_path(change: dict[str, Any], message: str) -> None:
    body = batch([{**state_event(0), **change}])
    with pytest.raises(InvalidBatch) as err:
        decode_batch(orjson.dumps(body))
    assert err.value.message == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "body: expected a JSON object"),
        (b'{"batch_id": "a"}', "source: required key not provided"),
        (orjson.dumps({**batch(), "colour": 1}), "colour: extra keys not allowed"),
        (orjson.dumps({**batch(), "batch_id": "no spaces"}), "batch_id: expected 1 to 64"),
        (orjson.dumps({**batch(), "events": []}), "events: expected 1 to 5000 events"),
        (orjson.dumps({**batch(), "events": 5}), "events: expected 1 to 5000 events"),
        (orjson.dumps({**batch(), "events": [5]}), "events[0]: expected a JSON object"),
        (orjson.dumps({**batch(), "source": "x"}), "source: expected a JSON object"),
        (
            orjson.dumps({**batch(), "source": {"instance_id": "x"}}),
            "source.integration_version: required key not provided",
        ),
    ],
)
def test_errors_name_the_batch_field(body: bytes, message: str) -> None:
    with pytest.raises(InvalidBatch) as err:
        decode_batch(body)
    assert err.value.message.startswith(message), err.value.message


def test_missing_required_field_is_named() -> None:
    event = state_event(0)
    del event["origin"]
    with pytest.raises(InvalidBatch, match=r"events\[0\]\.origin: required key not provided"):
        decode_batch(orjson.dumps(batch([event])))


@pytest.mark.parametrize(
    "body",
    [b"", b'{"batch_id": "x", "events": [', b'{"a": 1e400}', b'"\\ud800"', b'"\xff"'],
)
def test_what_is_no_json_is_named_malformed(body: bytes) -> None:
    with pytest.raises(InvalidJson, match=r"^body: malformed JSON: "):
        decode_batch(body)


def test_an_integer_beyond_64_bits_in_data_is_kept_as_a_number() -> None:
    # What orjson, which writes the stored JSON, reads such an integer as: a float.
    raw = orjson.dumps(batch([service_event(0, data={"huge": 1})])).replace(
        b'"huge":1', b'"huge":' + b"9" * 30
    )
    assert orjson.loads(decode_batch(raw).data[0] or "{}") == {"huge": 1e30}


@pytest.mark.parametrize(
    "value",
    [
        "01JDAW3M6V2X8T9Q0RB4N5K7HC",  # ULID -> 16 bytes
        "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # largest ULID
        "00000000000000000000000000",
        "7123456789ABCDEFGHJKMNPQRS",  # every digit, each at another place
        "0TVWXYZ0123456789ABCDEFGHJ",
        "0123456789abcdef0123456789abcdef",  # hex -> 17 bytes
        "0123456789ABCDEF0123456789ABCDEF",  # upper hex: kept as text
        "01jdaw3m6v2x8t9q0rb4n5k7hc",  # lower ULID: kept as text
        "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # over 128 bits: kept as text
        "ctx-1",
    ],
)
def test_context_ids_round_trip_exactly(value: str) -> None:
    encoded = encode_context(value)
    assert decode_context(encoded) == value
    if isinstance(encoded, bytes):
        assert len(encoded) in (16, 17)


def test_an_events_own_context_id_round_trips_at_every_offset() -> None:
    """An event's context id is stored by its offset from the event's time: 11 bytes
    within ±63 ms, 12 or 13 further out, its 16 bytes beyond about 17 minutes."""
    rng = random.Random(11)
    time_us = 1_764_547_200_123_456
    offsets = [*range(-300, 301), *(sign * 2**k for k in range(6, 22) for sign in (1, -1))]
    offsets += [sign * (2**k + d) for k in (13, 20) for d in (-1, 0) for sign in (1, -1)]
    for offset in offsets:
        number = ((time_us // 1000 + offset) << 80) | rng.getrandbits(80)
        text = decode_context(number.to_bytes(16))
        stored = ulid_near(number, time_us)
        assert decode_context(stored, time_us) == text, offset
        zigzag = 2 * offset if offset >= 0 else -2 * offset - 1
        size = next((10 + n for n in (1, 2, 3) if zigzag < 1 << (7 * n)), 16)
        assert len(stored) == size, offset
