"""Archive export: a time range as gzip JSONL or CSV in the share folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
import csv
from datetime import timedelta
import gzip
import io
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.addon.factory import state_event
from tests.addon.retention_data import T0, Api, event
from tests.conftest import AddonProcess


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


def _unzip(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


async def _load(api: Api) -> None:
    # 12 000 events over 5 days (more than one export page), plus one fully enriched event.
    await api.ingest(
        event(T0 + timedelta(seconds=36 * i), "sensor.power", str(i), numeric=float(i))
        for i in range(12_000)
    )
    rich = state_event(1, time_fired=(T0 + timedelta(days=1, seconds=1)).isoformat())
    await api.ingest([rich])


async def test_jsonl_export_of_a_range(api: Api, addon_server: AddonProcess) -> None:
    await _load(api)
    body = {"start": (T0 + timedelta(days=1)).isoformat(),
            "end": (T0 + timedelta(days=2)).isoformat(), "format": "jsonl"}  # fmt: skip
    status, answer = await api.call("POST", "/api/v1/export", body)
    assert status == 201, answer
    path = Path(answer["path"])
    assert path.parent == addon_server.data_dir / "share"  # --share-dir default in dev mode
    assert path.name.endswith(".jsonl.gz")
    lines = _unzip(path).decode().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert answer["rows"] == len(records) == 2400 + 1
    times = [r["time_fired"] for r in records]
    assert times == sorted(times)
    assert times[0] == "2026-01-02T00:00:00.000000+00:00"
    rich = next(r for r in records if r["entity_id"] == "sensor.living_room_temperature_1")
    assert rich["attributes"] == {"device_class": "temperature", "unit_of_measurement": "°C"}
    assert rich["labels"] == ["climate", "downstairs"]
    assert rich["area"] == "Living Room"
    assert rich["context_id"] == state_event(1)["context_id"]
    assert not list(path.parent.glob("*.partial"))


async def test_csv_export(api: Api) -> None:
    await _load(api)
    body = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(),
            "format": "csv"}  # fmt: skip
    status, answer = await api.call("POST", "/api/v1/export", body)
    assert status == 201, answer
    text = _unzip(Path(answer["path"])).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == answer["rows"] == 100
    assert rows[0]["entity_id"] == "sensor.power"
    assert rows[-1]["numeric_value"] == "99.0"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"start": "yesterday", "end": "2026-01-02T00:00:00+00:00"}, "start:"),
        ({"start": "2026-01-02T00:00:00+00:00", "end": "2026-01-01T00:00:00+00:00"}, "end:"),
        ({"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00",
          "format": "xml"}, "format:"),
        ({"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00",
          "where": 1}, "where:"),
        ([], "body:"),
    ],
)  # fmt: skip
async def test_bad_export_requests(api: Api, body: object, fragment: str) -> None:
    status, answer = await api.call("POST", "/api/v1/export", body)
    assert status == 400
    assert answer["message"].startswith(fragment)
