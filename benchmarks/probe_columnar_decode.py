"""Probe: what the add-on spends decoding a batch sent as columns, not as events.

    PYTHONPATH=addon .venv-addon/bin/python -m benchmarks.probe_columnar_decode [--runs 21]

Prints one JSON object. The body is the capture benchmark's load (5,000 state changes of
500 sensors, each event referring to its entity's facts in the batch's ``entities``) in
three forms, each decoded the least of ``--runs`` times:
- ``events``: as the integration sends it to an add-on without ``batch_columns``,
  decoded by the add-on's ``decode_batch``;
- ``columns``: as it sends it to one with (contract ``EventColumns``, blocks of 100
  events, times as ISO text), decoded by ``decode_batch``;
- ``sketch_int_times``: the same columns with times as epoch microseconds, decoded by a
  sketch of the least such a decoder must do (msgspec into typed lists, equal lengths,
  the context ids as stored, the lookup values indexed, the counts' keys). It leaves out
  the columns this load never fills and the errors' wording: a floor for planning, not
  a result.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime, timedelta
import json
import time
from typing import Any

import msgspec
import orjson

from homeiq_addon.ingest.decode import _indexed, decode_batch
from homeiq_addon.store.codec import TO_BASE32_BYTES, ULID_RE, encode_context, ulid_near

EVENTS = 5_000
ENTITIES = 500
BLOCK = 100  # the integration serializes 100 events per orjson call
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ulid(ms: int, rand: int) -> str:
    n = (ms << 80) | rand
    return "".join(_CROCKFORD[(n >> (5 * (25 - i))) & 31] for i in range(26))


def event_body() -> bytes:
    """The load as today's batch (contract Batch with entities)."""
    start = datetime(2026, 12, 2, 12, tzinfo=UTC)
    entities = [
        {
            "entity_id": f"sensor.bench_{i}",
            "domain": "sensor",
            "attributes": {},
            "device_class": "power",
            "state_class": "measurement",
            "unit": "W",
            "friendly_name": f"Bench {i}",
            "cause": "integration",
            "cause_name": "sensor",
        }
        for i in range(ENTITIES)
    ]
    events = []
    for n in range(EVENTS):
        fired = start + timedelta(microseconds=37 * n)
        events.append(
            {
                "time_fired": fired.isoformat(),
                "event_type": "state_changed",
                "origin": "LOCAL",
                "context_id": _ulid(int(fired.timestamp() * 1000), (n * 7919) << 40 | n),
                "state": str(1000 + n),
                "last_changed": fired.isoformat(),
                "numeric_value": float(1000 + n),
                "old_state": str(1000 + n - ENTITIES),
                "prev_state_seconds": 0.0185,
                "entity": n % ENTITIES,
            }
        )
    batch = {
        "batch_id": "01JBENCH000000000000000000",
        "source": {"instance_id": "0" * 32, "integration_version": "1.0.0"},
        "events": events,
        "entities": entities,
    }
    return orjson.dumps(batch)


def contract_columns(body: bytes) -> bytes:
    """The same events as the integration sends them as columns (contract EventColumns):
    a column only where an event of the block has a value."""
    batch = orjson.loads(body)
    events = batch.pop("events")
    blocks = []
    for at in range(0, len(events), BLOCK):
        part = events[at : at + BLOCK]
        names = dict.fromkeys(name for event in part for name in event)
        blocks.append({name: [event.get(name) for event in part] for name in names})
    batch["columns"] = blocks
    return orjson.dumps(batch)


def column_body(body: bytes) -> bytes:
    """The same events as blocks of columns, times as epoch microseconds (the sketch's)."""
    batch = orjson.loads(body)
    events = batch.pop("events")

    def us(text: str) -> int:
        return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1)

    batch["blocks"] = [
        {
            "time_fired": [us(e["time_fired"]) for e in block],
            "event_type": [e["event_type"] for e in block],
            "context_id": [e["context_id"] for e in block],
            "state": [e["state"] for e in block],
            "old_state": [e.get("old_state") for e in block],
            "changed_ago": [0 for _ in block],
            "numeric_value": [e.get("numeric_value") for e in block],
            "prev_state_seconds": [e.get("prev_state_seconds") for e in block],
            "entity": [e["entity"] for e in block],
        }
        for block in (events[at : at + BLOCK] for at in range(0, len(events), BLOCK))
    ]
    return orjson.dumps(batch)


# The sketch's own types (not the contract's: times as integers).
class Block(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    time_fired: list[int]
    event_type: list[str]
    context_id: list[str]
    state: list[str | None]
    old_state: list[str | None]
    changed_ago: list[int | None]
    numeric_value: list[float | None]
    prev_state_seconds: list[float | None]
    entity: list[int | None]


class Facts(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    entity_id: str
    domain: str | None = None
    attributes: dict[str, Any] | None = None
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    friendly_name: str | None = None
    cause: str | None = None
    cause_name: str | None = None


class Source(msgspec.Struct, forbid_unknown_fields=True):
    instance_id: str
    integration_version: str


class ColumnBatch(msgspec.Struct, forbid_unknown_fields=True):
    batch_id: str
    source: Source
    blocks: list[Block]
    entities: list[Facts]


_DECODER = msgspec.json.Decoder(ColumnBatch)


def decode_columns(body: bytes) -> tuple[Any, ...]:
    """The least a decoder of ColumnBatch must do to give the writer what it gets now."""
    batch = _DECODER.decode(body)
    times: list[int] = []
    types: list[str] = []
    contexts: list[str] = []
    states: list[str | None] = []
    old_states: list[str | None] = []
    agos: list[int | None] = []
    numbers: list[float | None] = []
    prev: list[float | None] = []
    refs: list[int | None] = []
    for block in batch.blocks:
        columns = (
            *(block.time_fired, block.event_type, block.context_id, block.state),
            *(block.old_state, block.changed_ago, block.numeric_value),
            *(block.prev_state_seconds, block.entity),
        )
        if len(set(map(len, columns))) != 1:
            raise ValueError("columns of different lengths")
        times += block.time_fired
        types += block.event_type
        contexts += block.context_id
        states += block.state
        old_states += block.old_state
        agos += block.changed_ago
        numbers += block.numeric_value
        prev += block.prev_state_seconds
        refs += block.entity
    if min(times) < 0 or max(times) >= 1 << 53:
        raise ValueError("time out of range")
    if max(r for r in refs if r is not None) >= len(batch.entities):
        raise ValueError("entity out of range")
    stored_contexts = [
        ulid_near(int(c.encode().translate(TO_BASE32_BYTES), 32), t)
        if len(c) == 26 and ULID_RE.match(c)
        else encode_context(c)
        for c, t in zip(contexts, times, strict=True)
    ]
    entity_fields = [
        orjson.dumps((f.device_class, f.state_class, f.unit, f.friendly_name, f.cause))
        for f in batch.entities
    ]
    attributes = [orjson.dumps(f.attributes) for f in batch.entities]
    distinct_types, (type_at,) = _indexed(types)
    distinct_states, (state_at, old_state_at) = _indexed(states, old_states)
    entity_at = [0 if r is None else r + 1 for r in refs]
    counts = Counter(zip([t // 60_000_000 for t in times], type_at, entity_at, strict=True))
    return (
        *(stored_contexts, entity_fields, attributes, distinct_types, distinct_states),
        *(state_at, old_state_at, entity_at, counts, agos, numbers, prev),
    )


def least_us_per_event(decode: Any, body: bytes, runs: int) -> float:
    spans = []
    for _ in range(runs):
        start = time.perf_counter()
        decode(body)
        spans.append(time.perf_counter() - start)
    return round(min(spans) / EVENTS * 1e6, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    events = event_body()
    columns = contract_columns(events)
    sketch = column_body(events)
    assert decode_batch(columns) == decode_batch(events)
    assert len(decode_columns(sketch)[0]) == EVENTS
    print(
        json.dumps(
            {
                "bytes_per_event": {
                    "events": round(len(events) / EVENTS, 1),
                    "columns": round(len(columns) / EVENTS, 1),
                    "sketch_int_times": round(len(sketch) / EVENTS, 1),
                },
                "decode_us_per_event": {
                    "events": least_us_per_event(decode_batch, events, runs),
                    "columns": least_us_per_event(decode_batch, columns, runs),
                    "sketch_int_times": least_us_per_event(decode_columns, sketch, runs),
                },
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
