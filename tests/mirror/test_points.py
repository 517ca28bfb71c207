"""Stored events and rollups become points that a real victoria-metrics keeps exactly:
every series read back with its labels, values and timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
import math
import random
from typing import Any

import orjson
import pytest

from homeiq_addon.contract import parse_time_us
from homeiq_addon.mirror.points import (
    MAX_STRING_BYTES,
    InvalidEvent,
    Rollup,
    event_lines,
    rollup_lines,
)
from homeiq_addon.mirror.writer import Target, TargetWriter
from tests.mirror.engines import VictoriaMetrics, samples

T0 = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def ms(seconds: float) -> int:
    """The millisecond victoria-metrics keeps for the event at T0 + seconds."""
    us = parse_time_us(at(seconds))
    assert us is not None
    return us // 1000


def state_event(
    entity_id: str, state: str | None, old: str | None, t: float, **extra: Any
) -> dict[str, Any]:
    """A state event as /api/v1/events answers it."""
    event: dict[str, Any] = {
        "id": 1,
        "time_fired": at(t),
        "event_type": "state_changed",
        "origin": "LOCAL",
        "context_id": "01JD0000000000000000000000",
        "entity_id": entity_id,
        "domain": entity_id.partition(".")[0],
    }
    if state is not None:
        event["state"] = state
    if old is not None:
        event["old_state"] = old
    return event | extra


async def mirror(server: VictoriaMetrics, lines: Sequence[str]) -> None:
    target = Target(name="vm", url=server.url, token="", org="home", bucket="homeiq")
    async with TargetWriter(target) as writer:
        outcome = await writer.write(lines)
    assert outcome.written == len(lines)
    assert outcome.refused == []


def series(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


async def test_a_numeric_state_arrives_with_its_tags_value_and_time(
    victoria: VictoriaMetrics,
) -> None:
    event = state_event(
        "sensor.kitchen_temperature", "21.5", "21.0", 0,
        numeric_value=21.5, prev_state_seconds=30.0,
        # As /api/v1/events hands JSON columns over: the stored text, as a Fragment.
        attributes=orjson.Fragment(orjson.dumps(
            {"unit_of_measurement": "°C", "friendly_name": 'Kitchen "main"', "precision": 1}
        )),
        area="Kitchen, ground=floor", floor="Ground floor", device_class="temperature",
        unit="°C", cause="device", cause_name="Zigbee",
    )  # fmt: skip
    await mirror(victoria, event_lines(event))

    tags = {"area": "Kitchen, ground=floor", "cause": "device", "device_class": "temperature",
            "domain": "sensor", "entity_id": "sensor.kitchen_temperature",
            "event_type": "state_changed", "floor": "Ground floor", "unit": "°C"}  # fmt: skip
    t = ms(0)
    assert samples(victoria) == {
        series("homeiq_events", **tags): [(t, 1)],
        series("homeiq_value", **tags): [(t, 21.5)],
        series("homeiq_prev_state_seconds", **tags): [(t, 30)],
        # String fields: victoria-metrics keeps the number a string spells, else 0.
        series("homeiq_state", **tags): [(t, 21.5)],
        series("homeiq_cause_name", **tags): [(t, 0)],
        series("homeiq_attr_unit_of_measurement_str", **tags): [(t, 0)],
        series("homeiq_attr_friendly_name_str", **tags): [(t, 0)],
        series("homeiq_attr_precision_num", **tags): [(t, 1)],
    }


async def test_non_numeric_states_are_0_1_series_and_attribute_types_never_mix(
    victoria: VictoriaMetrics,
) -> None:
    where = {"area": "Hall"}
    events = [
        state_event(
            "light.hall", "on", "off", 0, attributes={"brightness": 255, "dimmed": True}, **where
        ),
        # The same attribute as a string now: a field of its own, no clash.
        state_event("light.hall", "on", "on", 1, attributes={"brightness": "max"}, **where),
        state_event("light.hall", "off", "on", 2, attributes={}, **where),
    ]
    await mirror(victoria, [line for event in events for line in event_lines(event)])

    tags = {"area": "Hall", "domain": "light", "entity_id": "light.hall",
            "event_type": "state_changed"}  # fmt: skip
    flag = {"area": "Hall", "domain": "light", "entity_id": "light.hall"}
    assert samples(victoria) == {
        series("homeiq_events", **tags): [(ms(0), 1), (ms(1), 1), (ms(2), 1)],
        series("homeiq_state", **tags): [(ms(0), 0), (ms(1), 0), (ms(2), 0)],
        series("homeiq_attr_brightness_num", **tags): [(ms(0), 255)],
        series("homeiq_attr_brightness_str", **tags): [(ms(1), 0)],
        series("homeiq_attr_dimmed_bool", **tags): [(ms(0), 1)],
        # 1 from the moment a state begins (again on every event in it), 0 when it ends.
        series("homeiq_states_active", **flag, state="on"): [(ms(0), 1), (ms(1), 1), (ms(2), 0)],
        series("homeiq_states_active", **flag, state="off"): [(ms(0), 0), (ms(2), 1)],
    }


async def test_without_string_fields_only_numbers_and_state_series_arrive(
    victoria: VictoriaMetrics,
) -> None:
    events = [
        state_event(
            "lock.door",
            "locked",
            "unlocked",
            0,
            attributes={"code_format": "^\\d{4}$", "battery": 80},
        ),
        # From a number to "unavailable": only the new state gets a state series.
        state_event("sensor.power", "unavailable", "12.5", 1, attributes={"unit": "W"}),
    ]
    lines = [line for event in events for line in event_lines(event, strings=False)]
    await mirror(victoria, lines)

    lock = {"domain": "lock", "entity_id": "lock.door"}
    power = {"domain": "sensor", "entity_id": "sensor.power"}
    assert samples(victoria) == {
        series("homeiq_events", **lock, event_type="state_changed"): [(ms(0), 1)],
        series("homeiq_attr_battery_num", **lock, event_type="state_changed"): [(ms(0), 80)],
        series("homeiq_states_active", **lock, state="locked"): [(ms(0), 1)],
        series("homeiq_states_active", **lock, state="unlocked"): [(ms(0), 0)],
        series("homeiq_events", **power, event_type="state_changed"): [(ms(1), 1)],
        series("homeiq_states_active", **power, state="unavailable"): [(ms(1), 1)],
    }


async def test_an_event_without_entity_carries_its_data_typed(victoria: VictoriaMetrics) -> None:
    event = {
        "id": 7, "time_fired": at(0), "event_type": "call_service", "origin": "LOCAL",
        "context_id": "01JD0000000000000000000000", "cause": "automation",
        "cause_name": "Wake up",
        "data": orjson.Fragment(orjson.dumps({
            "domain": "light", "service": "turn_on", "odd key!": 2,
            "service_data": {"entity_id": ["light.hall"], "brightness": 30},
        })),
    }  # fmt: skip
    await mirror(victoria, event_lines(event))

    tags = {"cause": "automation", "event_type": "call_service"}
    t = ms(0)
    assert samples(victoria) == {
        series("homeiq_events", **tags): [(t, 1)],
        series("homeiq_cause_name", **tags): [(t, 0)],
        series("homeiq_data_domain_str", **tags): [(t, 0)],
        series("homeiq_data_service_str", **tags): [(t, 0)],
        series("homeiq_data_odd_key__num", **tags): [(t, 2)],
        series("homeiq_data_service_data_json", **tags): [(t, 0)],
    }


async def test_rollups_arrive_at_the_start_of_their_period(victoria: VictoriaMetrics) -> None:
    hour_us = parse_time_us("2026-11-22T10:00:00+00:00")
    day_us = parse_time_us("2026-11-22T00:00:00+00:00")
    assert hour_us is not None and day_us is not None
    numeric = Rollup(
        entity_id="sensor.power", period="hour", start_us=hour_us, count=4, min=1.0,
        max=4.5, sum=10.0, events=5, transitions=3, time_in_state={"1.0": 60.0},
    )  # fmt: skip
    states = Rollup(
        entity_id="light.hall", period="day", start_us=day_us, count=0, min=None, max=None,
        sum=None, events=9, transitions=8,
        time_in_state={"on": 3600.5, "off": 82799.5, "unavailable": 0.25},
    )  # fmt: skip
    await mirror(victoria, [*rollup_lines(numeric), *rollup_lines(states)])

    power = {"domain": "sensor", "entity_id": "sensor.power"}
    hall = {"domain": "light", "entity_id": "light.hall"}
    h, d = hour_us // 1000, day_us // 1000
    assert samples(victoria) == {
        series("homeiq_hourly_events", **power): [(h, 5)],
        series("homeiq_hourly_transitions", **power): [(h, 3)],
        series("homeiq_hourly_count", **power): [(h, 4)],
        series("homeiq_hourly_min", **power): [(h, 1)],
        series("homeiq_hourly_max", **power): [(h, 4.5)],
        series("homeiq_hourly_mean", **power): [(h, 2.5)],
        series("homeiq_hourly_sum", **power): [(h, 10)],
        series("homeiq_daily_events", **hall): [(d, 9)],
        series("homeiq_daily_transitions", **hall): [(d, 8)],
        series("homeiq_daily_states_seconds", **hall, state="on"): [(d, 3600.5)],
        series("homeiq_daily_states_seconds", **hall, state="off"): [(d, 82799.5)],
        series("homeiq_daily_states_seconds", **hall, state="unavailable"): [(d, 0.25)],
    }


async def test_written_again_every_point_counts_once(victoria: VictoriaMetrics) -> None:
    events = [
        state_event("switch.fan", "on", "off", 0),
        state_event("switch.fan", "off", "on", 0.002),
        # 0.4 ms later: the same millisecond, which is all victoria-metrics keeps.
        state_event("switch.fan", "on", "off", 0.0024),
    ]
    lines = [line for event in events for line in event_lines(event, strings=False)]
    for _ in range(3):
        await mirror(victoria, lines)

    tags = {"domain": "switch", "entity_id": "switch.fan"}
    stored = samples(victoria)
    assert set(stored) == {
        series("homeiq_events", **tags, event_type="state_changed"),
        series("homeiq_states_active", **tags, state="on"),
        series("homeiq_states_active", **tags, state="off"),
    }
    for values in stored.values():
        # One sample per series and millisecond. Which of two events in one millisecond
        # it keeps, victoria-metrics 1.79.5 does not define.
        assert [t for t, _ in values] == [ms(0), ms(0.002)]
    assert stored[series("homeiq_states_active", **tags, state="on")][0] == (ms(0), 1)
    assert stored[series("homeiq_states_active", **tags, state="off")][0] == (ms(0), 0)


async def test_awkward_text_and_huge_attributes_still_arrive(victoria: VictoriaMetrics) -> None:
    state = 'line 1\nline 2, "quoted" \\ = end\\'
    event = state_event(
        "input_text.note", state, None, 0, area="Tab\there, trailing\\",
        attributes={"small": 1, "long": "x" * (MAX_STRING_BYTES + 1),
                    **{f"part_{n}": ["y" * 60_000] for n in range(5)}},
    )  # fmt: skip
    await mirror(victoria, event_lines(event))

    tags = {"area": "Tab\\there, trailing\\", "domain": "input_text",
            "entity_id": "input_text.note", "event_type": "state_changed"}  # fmt: skip
    flag = {k: v for k, v in tags.items() if k != "event_type"}
    t = ms(0)
    # A string over 64 KiB is left out; five of 60 kB each would take the line past
    # victoria-metrics' limit, where it vanishes: they are left out, the rest arrives.
    assert samples(victoria) == {
        series("homeiq_events", **tags): [(t, 1)],
        series("homeiq_state", **tags): [(t, 0)],
        series("homeiq_attr_small_num", **tags): [(t, 1)],
        # A newline becomes the two characters \n; the rest of the label as it was.
        series("homeiq_states_active", **flag, state=state.replace("\n", "\\n")): [(t, 1)],
    }


def test_an_event_without_a_time_or_type_is_no_point() -> None:
    event = state_event("light.hall", "on", None, 0)
    for broken in ({"time_fired": "yesterday"}, {"time_fired": None}, {"event_type": ""}):
        with pytest.raises(InvalidEvent):
            event_lines(event | broken)


def field_types(line: str) -> dict[str, str]:
    """A line's fields and their line-protocol types (float, bool, string, integer)."""
    i = 0
    while line[i] != " ":  # measurement and tags: escaped spaces only
        i += 2 if line[i] == "\\" else 1
    fields_end = line.rindex(" ")
    types: dict[str, str] = {}
    part = line[i + 1 : fields_end]
    j = 0
    while j < len(part):
        eq = part.index("=", j)
        name = part[j:eq]
        j = eq + 1
        if part[j] == '"':
            j += 1
            while part[j] != '"':
                j += 2 if part[j] == "\\" else 1
            types[name], j = "string", j + 2
            continue
        end = part.find(",", j)
        end = len(part) if end < 0 else end
        value = part[j:end]
        types[name] = ("bool" if value in ("true", "false")
                       else "integer" if value.endswith("i") else "float")  # fmt: skip
        assert types[name] != "float" or math.isfinite(float(value))
        j = end + 1
    return types


def test_no_field_ever_changes_type_whatever_the_attributes() -> None:
    """What InfluxDB refuses a write for (a field of a measurement written with another
    type than before) cannot happen: across events whose attributes change type at
    random, each field name has one type, and no field is an integer."""
    rng = random.Random(14)
    values: list[Any] = [0, 1, -7, 2**40, 1.5, -0.0, 1e300, True, False, "on", "", "1.5",
                         [1, 2], {"a": None}, None, "x\ny", '"']  # fmt: skip
    seen: dict[tuple[str, str], set[str]] = {}
    for n in range(3000):
        numeric = rng.random() < 0.5
        state = str(rng.choice([1, 2.5, -3])) if numeric else rng.choice(["on", "off", "1e5x"])
        event = state_event(
            f"sensor.s{n % 7}", state, rng.choice(["on", "7", None]), n,
            numeric_value=float(state) if numeric else None,
            attributes={rng.choice(["a", "b", "c d", "é"]): rng.choice(values) for _ in range(3)},
            data={"k": rng.choice(values)},
            cause_name=rng.choice(["x", None]),
        )  # fmt: skip
        for line in event_lines({k: v for k, v in event.items() if v is not None}):
            measurement = line.split(",", 1)[0]
            for name, kind in field_types(line).items():
                seen.setdefault((measurement, name), set()).add(kind)
    assert all(len(kinds) == 1 for kinds in seen.values()), seen
    assert all(kinds != {"integer"} for kinds in seen.values())
    assert seen[("homeiq", "value")] == {"float"}
    assert seen[("homeiq", "events")] == {"float"}
    assert seen[("homeiq", "state")] == {"string"}
    assert seen[("homeiq_states", "active")] == {"float"}
    for (_, name), kinds in seen.items():
        suffix = name.rsplit("_", 1)[-1]
        expected = {"num": "float", "bool": "bool", "str": "string", "json": "string"}
        if name.startswith(("attr_", "data_")):
            assert kinds == {expected[suffix]}, (name, kinds)


def tag_keys(line: str) -> set[str]:
    """The tag keys of a line (its measurement and tags end at the first unescaped space)."""
    parts, i = [""], 0
    while line[i] != " ":
        if line[i] == "\\":
            parts[-1], i = parts[-1] + line[i : i + 2], i + 2
            continue
        if line[i] == ",":
            parts.append("")
        else:
            parts[-1] += line[i]
        i += 1
    return {part.partition("=")[0] for part in parts[1:]}


def test_no_tag_shares_its_name_with_a_field_of_its_measurement() -> None:
    """InfluxDB 3 refuses a point whose tag has the name of one of the table's fields (or
    the reverse): attributes and data named like tags stay apart, prefixed."""
    like_tags = dict.fromkeys(("state", "entity_id", "domain", "unit", "area", "cause"), "x")
    event = state_event(
        "sensor.kitchen", "on", "off", 0, area="Kitchen", floor="Ground",
        device_class="door", unit="x", cause="automation", cause_name="state",
        prev_state_seconds=3.0, attributes=like_tags,
    )  # fmt: skip
    service = {"time_fired": at(1), "event_type": "call_service", "domain": "light",
               "data": like_tags}  # fmt: skip
    rollups = [
        Rollup(entity_id="sensor.kitchen", period=period, start_us=0, count=count, min=1.0,
               max=2.0, sum=3.0, events=2, transitions=1, time_in_state={"on": 5.0})
        for period in ("hour", "day") for count in (0, 2)
    ]  # fmt: skip
    lines = [*event_lines(event), *event_lines(service)]
    lines += [line for rollup in rollups for line in rollup_lines(rollup)]
    tags: dict[str, set[str]] = {}
    fields: dict[str, set[str]] = {}
    for line in lines:
        measurement = line.split(",", 1)[0]
        tags.setdefault(measurement, set()).update(tag_keys(line))
        fields.setdefault(measurement, set()).update(field_types(line))
    assert set(tags) == {"homeiq", "homeiq_states", "homeiq_hourly", "homeiq_hourly_states",
                         "homeiq_daily", "homeiq_daily_states"}  # fmt: skip
    assert "state" in tags["homeiq_states"] and "state" in fields["homeiq"]
    for measurement, keys in tags.items():
        assert not keys & fields[measurement], measurement
