"""The wire validator: voluptuous is the contract, the fast path never accepts more."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from homeiq_addon.ingest.schema import (
    EVENT_FIELDS,
    TIME_EXPECTED,
    BatchInvalid,
    _fast_batch,
    check_batch,
    validate_batch,
)
from homeiq_addon.ingest.wire import decode_fast
from homeiq_addon.store.codec import decode_context, encode_context
from tests.addon.factory import batch, service_event, state_event

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


def _mutations(rng: random.Random, base: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    fields = [*EVENT_FIELDS, "unknown_field"]
    for _ in range(3000):
        body = copy.deepcopy(base)
        event = body["events"][rng.randrange(len(body["events"]))]
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(fields)
            roll = rng.random()
            if roll < 0.15:
                event.pop(name, None)
            else:
                event[name] = rng.choice(ODD_VALUES)
        if rng.random() < 0.05:
            body[rng.choice(["batch_id", "source", "events", "extra"])] = rng.choice(ODD_VALUES)
        out.append(body)
    return out


def test_fast_path_accepts_only_what_voluptuous_accepts() -> None:
    rng = random.Random(20261122)
    base = batch([state_event(0), service_event(1)])
    accepted = rejected = 0
    for body in _mutations(rng, base):
        try:
            validate_batch(body)
            schema_ok = True
        except BatchInvalid:
            schema_ok = False
        if _fast_batch(body):
            assert schema_ok, body
        # check_batch (what ingest uses) gives exactly the schema's verdict.
        try:
            check_batch(body)
            assert schema_ok
            accepted += 1
        except BatchInvalid:
            assert not schema_ok
            rejected += 1
    # Both sides were exercised.
    assert accepted > 100
    assert rejected > 100


def test_msgspec_fast_path_accepts_only_what_voluptuous_accepts() -> None:
    # The same mutations, as the bytes a client sends: whatever wire.decode_fast accepts,
    # voluptuous must accept once orjson (what the slow path parses with) decoded it.
    rng = random.Random(20261123)
    base = batch([state_event(0), service_event(1)])
    accepted = rejected = 0
    for body in _mutations(rng, base):
        try:
            raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # 2**64 has no JSON spelling orjson writes
            continue
        if decode_fast(raw) is None:
            rejected += 1
            continue
        validate_batch(orjson.loads(raw))
        accepted += 1
    assert accepted > 100
    assert rejected > 100


def test_realistic_batches_take_the_fast_path() -> None:
    body = batch([state_event(i) for i in range(20)] + [service_event(0)])
    assert _fast_batch(body)
    assert decode_fast(orjson.dumps(body)) is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_fired": "now"}, f"events[0].time_fired: {TIME_EXPECTED}"),
        ({"last_changed": "1969-12-31T23:59:59+00:00"}, f"events[0].last_changed: {TIME_EXPECTED}"),
        ({"last_reported": "now"}, f"events[0].last_reported: {TIME_EXPECTED}"),
        ({"numeric_value": "1"}, "events[0].numeric_value: expected finite number"),
        ({"labels": ["a", 2]}, "events[0].labels: expected list of at most 100 strings"),
        ({"extra": 1}, "events[0].extra: extra keys not allowed"),
        ({"entity_id": None}, "events[0].entity_id: required for state events"),
    ],
)
def test_errors_name_the_field_path(change: dict[str, Any], message: str) -> None:
    body = batch([{**state_event(0), **change}])
    assert decode_fast(orjson.dumps(body)) is None  # the fast path leaves it to this one
    with pytest.raises(BatchInvalid) as err:
        check_batch(body)
    assert err.value.message == message


def test_missing_required_field_is_named() -> None:
    event = state_event(0)
    del event["origin"]
    with pytest.raises(BatchInvalid, match=r"events\[0\]\.origin: required key not provided"):
        validate_batch(batch([event]))


@pytest.mark.parametrize(
    "value",
    [
        "01JDAW3M6V2X8T9Q0RB4N5K7HC",  # ULID -> 16 bytes
        "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # largest ULID
        "00000000000000000000000000",
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
