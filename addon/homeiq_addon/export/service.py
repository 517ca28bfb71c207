"""Archive export: the events of a time range as gzip JSONL or CSV in the share folder,
for other tools (pandas, DuckDB, a spreadsheet) to pick up from /share."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from functools import partial
import gzip
import io
from pathlib import Path
import sqlite3
from typing import Any, Final

import orjson

from ..store import time_blocks
from ..store.codec import decode_context
from ..store.db import Store
from ..times import us_to_iso

_PAGE: Final = 5000
FORMATS: Final = ("jsonl", "csv")
COLUMNS: Final = (
    "id", "time_fired", "event_type", "origin", "context_id", "entity_id", "domain", "state",
    "old_state", "numeric_value", "prev_state_seconds", "attributes", "data", "area_id",
    "area", "floor", "device_id", "device_name", "device_manufacturer", "device_model",
    "labels", "device_class", "state_class", "unit", "friendly_name", "cause", "cause_name",
    "cause_id", "outdoor_temperature", "weather_condition", "sun_elevation", "people_home",
)  # fmt: skip
_JSON_COLUMNS: Final = frozenset({"attributes", "data", "labels"})
# The store's view resolves every dimension; origin and context come from the row itself.
_SELECT: Final = (
    "SELECT v.id, v.time_fired, v.event_type, e.origin, e.context_id, v.entity_id, v.domain,"
    " v.state, v.old_state, v.numeric_value, v.prev_state_seconds, v.attributes, v.data,"
    " v.area_id, v.area, v.floor, v.device_id, v.device_name, v.device_manufacturer,"
    " v.device_model, v.labels, v.device_class, v.state_class, v.unit, v.friendly_name,"
    " v.cause, v.cause_name, v.cause_id, v.outdoor_temperature, v.weather_condition,"
    " v.sun_elevation, v.people_home"
    " FROM events_enriched v JOIN events e ON e.id = v.id"
    " WHERE v.id IN (SELECT value FROM json_each(?))"
)
_NEXT_IDS: Final = (
    "SELECT e.id FROM events e WHERE {ids} AND e.time_fired >= ? AND e.time_fired < ?"
    # A row value, not an OR: SQLite compares it on each row without an OR's detours.
    " AND (e.time_fired, e.id) > (?, ?) ORDER BY e.time_fired, e.id LIMIT ?"
)


def _page(conn: sqlite3.Connection, args: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """The next page after the position: from the first group of id blocks, in time
    order, that holds events after it (store/time_blocks.py). The ids are sorted
    without their rows (sorting thousands of whole rows spills to disk), then the rows
    are read by id and put in order."""
    start_us, end_us, after_us = args[0], args[1], args[2]
    for ids, params in time_blocks.in_time_order(conn, max(start_us, after_us), end_us):
        found = [row[0] for row in conn.execute(_NEXT_IDS.format(ids=ids), (*params, *args))]
        if found:
            page = conn.execute(_SELECT, (orjson.dumps(found).decode(),)).fetchall()
            page.sort(key=lambda row: (row[1], row[0]))
            return page
    return []


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(COLUMNS, row, strict=True))
    record["context_id"] = decode_context(record["context_id"], record["time_fired"])
    record["time_fired"] = us_to_iso(record["time_fired"])
    record["origin"] = "REMOTE" if record["origin"] else "LOCAL"
    return record


def export(store: Store, folder: Path, start_us: int, end_us: int, fmt: str) -> dict[str, Any]:
    """Write the file (blocking; run in a thread); page by page, never all in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = "{}-{}".format(*(
        datetime.fromtimestamp(t / 1e6, UTC).strftime("%Y%m%dT%H%M%SZ") for t in (start_us, end_us)
    ))  # fmt: skip
    target = folder / f"homeiq-events-{stamp}.{fmt}.gz"
    partial_path = target.with_name(target.name + ".partial")
    rows = 0
    position = (start_us - 1, -1)
    with gzip.open(partial_path, "wb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        while True:
            t, row_id = position
            args = (start_us, end_us, t, row_id, _PAGE)
            page: list[tuple[Any, ...]] = store.read_sync(partial(_page, args=args))
            if not page:
                break
            for row in page:
                record = _record(row)
                if writer is not None:
                    writer.writerow(["" if v is None else v for v in record.values()])
                else:
                    for key in _JSON_COLUMNS:
                        if record[key] is not None:
                            record[key] = orjson.Fragment(record[key])
                    text.write(orjson.dumps(record).decode())
                    text.write("\n")
            rows += len(page)
            position = (page[-1][1], page[-1][0])
        text.flush()
        text.detach()
    partial_path.replace(target)
    return {"file": target.name, "path": str(target), "format": fmt, "rows": rows,
            "bytes": target.stat().st_size, "start": us_to_iso(start_us),
            "end": us_to_iso(end_us)}  # fmt: skip
