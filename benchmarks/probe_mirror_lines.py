"""Throughput probe: points per second the mirror's writer puts into one victoria-metrics.

    PYTHONPATH=addon .venv-addon/bin/python -m benchmarks.probe_mirror_lines [--rounds 5]

Prints one JSON object: how fast stored events become lines (``.points``, raw line
protocol, beside influxdb-client's ``Point`` for the same points), and how fast the
writer gets batches of lines into a real victoria-metrics on a free loopback port,
counted as the points the server then exports. It is why points.py writes raw line
protocol; benchmarks/bench_influx.py measures the mirror as a whole.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import tempfile
import time
from typing import Any, cast

from influxdb_client.client.write.point import Point as _Point
from influxdb_client.domain.write_precision import WritePrecision

from homeiq_addon.mirror.points import event_lines
from homeiq_addon.mirror.writer import Target, TargetWriter
from tests.mirror.engines import VictoriaMetrics, running

T0_US = 1_795_000_000_000_000  # 2026-11-18
Point = cast(Any, _Point)  # untyped


def sample_events(count: int, entities: int = 500) -> list[dict[str, Any]]:
    """Enriched state events as /api/v1/events answers them: 4 in 5 numeric sensors,
    the rest lights with a few attributes."""
    events = []
    for n in range(count):
        entity = n % entities
        numeric = entity % 5 != 0
        event: dict[str, Any] = {
            "id": n + 1,
            "time_fired": "",
            "event_type": "state_changed",
            "origin": "LOCAL",
            "context_id": "01JD0000000000000000000000",
            "entity_id": f"sensor.probe_{entity}" if numeric else f"light.probe_{entity}",
            "domain": "sensor" if numeric else "light",
            "area": f"Room {entity % 12}",
            "floor": "Ground",
            "cause": "device",
        }
        if numeric:
            value = round(20 + (n % 97) / 10, 1)
            attributes = {"state_class": "measurement", "friendly_name": "T"}
            event |= {"state": str(value), "old_state": "20.0", "numeric_value": value,
                      "device_class": "temperature", "unit": "°C"}  # fmt: skip
            event["attributes"] = attributes
        else:
            on = n % 2 == 0
            event |= {"state": "on" if on else "off", "old_state": "off" if on else "on",
                      "attributes": {"brightness": n % 256, "color_mode": "brightness",
                                     "friendly_name": "Lamp"}}  # fmt: skip
        events.append(event)
    return events


def build_rate(events: list[dict[str, Any]]) -> dict[str, float]:
    started = time.perf_counter()
    lines = [line for n, e in enumerate(events) for line in event_lines(e, time_us=T0_US + n)]
    raw_s = time.perf_counter() - started
    started = time.perf_counter()
    for n, e in enumerate(events[: len(events) // 4]):
        point = Point("homeiq").time(T0_US + n, WritePrecision.US)
        for tag in ("area", "cause", "device_class", "domain", "entity_id", "event_type"):
            if e.get(tag):
                point.tag(tag, e[tag])
        point.field("events", 1.0).field("state", e["state"])
        if "numeric_value" in e:
            point.field("value", float(e["numeric_value"]))
        for key, value in e["attributes"].items():
            point.field(f"attr_{key}_{'str' if isinstance(value, str) else 'num'}", value)
        point.to_line_protocol()
    point_s = (time.perf_counter() - started) * 4
    return {
        "events_per_s_raw": round(len(events) / raw_s),
        "lines_per_event": round(len(lines) / len(events), 3),
        "events_per_s_influxdb_client_point": round(len(events) / point_s),
    }


async def write_rate(
    url: str, events: list[dict[str, Any]], batch: int, t0_us: int
) -> dict[str, float]:
    lines = [
        line for n, e in enumerate(events) for line in event_lines(e, time_us=t0_us + n * 1000)
    ]
    target = Target(name="probe", url=url, token="", org="probe", bucket="probe")
    async with TargetWriter(target) as writer:
        started = time.perf_counter()
        for first in range(0, len(lines), batch):
            outcome = await writer.write(lines[first : first + batch])
            assert not outcome.refused
        elapsed = time.perf_counter() - started
    return {"points": len(lines), "seconds": round(elapsed, 3),
            "points_per_s": round(len(lines) / elapsed)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    events = sample_events(args.events)
    result: dict[str, Any] = {"build": build_rate(events), "rounds": []}
    with tempfile.TemporaryDirectory() as work:
        server = VictoriaMetrics(Path(work) / "vm")
        with running(server):
            for round_ in range(args.rounds):
                # Each round at its own times (1 ms apart per event, as the server keeps
                # milliseconds): new samples, not duplicates of the last round's.
                t0_us = T0_US + round_ * len(events) * 1000
                result["rounds"].append(
                    asyncio.run(write_rate(server.url, events, args.batch, t0_us))
                )
            stored = sum(len(s.samples) for s in server.export())
            result["samples_exported"] = stored
    rates = sorted(r["points_per_s"] for r in result["rounds"])
    result["median_points_per_s"] = rates[len(rates) // 2]
    result["points_written"] = sum(r["points"] for r in result["rounds"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
