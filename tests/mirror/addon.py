"""The real add-on process configured with mirror targets, and a plain client for it."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
import itertools
import json
from pathlib import Path
from typing import Any

from tests.conftest import AddonProcess, started
from tests.mirror.engines import http, wait_until

_ids = itertools.count(1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def vm_target(name: str, url: str, **settings: Any) -> dict[str, Any]:
    """A target as the options hold it: VictoriaMetrics, string fields off."""
    return {"name": name, "url": url, "bucket": "homeiq", "string_fields": False, **settings}


class MirroringAddon(AddonProcess):
    """The add-on started from an options.json (container mode) on loopback."""

    def __init__(self, data_dir: Path, **options: Any) -> None:
        super().__init__(data_dir)
        self.options_path = data_dir.parent / f"{data_dir.name}-options.json"
        self.configure(**options)

    def configure(self, **options: Any) -> None:
        """The options of the next start."""
        self.options_path.write_text(json.dumps(options))
        self.extra_args = ["--options", str(self.options_path), "--host", "127.0.0.1"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        status, raw = http(method, f"{self.url}{path}", data, headers)
        return status, json.loads(raw) if raw else None

    def ingest(self, events: list[dict[str, Any]], size: int = 2000) -> None:
        for i in range(0, len(events), size):
            body = {
                "batch_id": f"mirror-{next(_ids)}",
                "source": {"instance_id": "test", "integration_version": "0.1.0"},
                "events": events[i : i + size],
            }
            status, answer = self.call("POST", "/api/v1/ingest", body)
            assert status == 200, answer

    def targets(self) -> dict[str, dict[str, Any]]:
        status, body = self.call("GET", "/api/v1/mirror/targets")
        assert status == 200, body
        return {target["name"]: target for target in body["targets"]}

    def wait_mirrored(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Until the target has received every stored event; its report then."""
        found: dict[str, Any] = {}

        def done() -> bool:
            found.update(self.targets()[name])
            return bool(found["lag_events"] == 0 and found["status"] == "ok")

        wait_until(done, timeout, f"{name} mirrored: {found}")
        return found


def mirroring_addon(
    data_dir: Path, **options: Any
) -> contextlib.AbstractContextManager[MirroringAddon]:
    """An add-on started from these options on a new data dir, stopped after."""
    return started(MirroringAddon(data_dir, **options))


def state(
    t: datetime, entity_id: str, value: str, *, numeric: float | None = None, **more: Any
) -> dict[str, Any]:
    n = next(_ids)
    event: dict[str, Any] = {
        "time_fired": t.isoformat(timespec="microseconds"),
        "event_type": "state_changed",
        "origin": "LOCAL",
        "context_id": f"01JD{n:022d}",
        "entity_id": entity_id,
        "domain": entity_id.partition(".")[0],
        "state": value,
        **more,
    }
    if numeric is not None:
        event["numeric_value"] = numeric
    return event


def sensor_stream(count: int, *, start: datetime = T0, entities: int = 10) -> list[dict[str, Any]]:
    """``count`` numeric states, one a second, spread over ``entities`` sensors."""
    return [
        state(start + timedelta(seconds=i), f"sensor.s{i % entities}", f"{i}.0", numeric=float(i))
        for i in range(count)
    ]
