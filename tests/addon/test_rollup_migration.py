"""Rollups an older version stored (a row per entity and hour, keyed by the entity id
text) are converted in place when the add-on opens the file, and read back the same."""

from __future__ import annotations

from pathlib import Path
import sqlite3

import orjson

from homeiq_addon.retention import history
from homeiq_addon.store.db import DB_NAME, Store
from homeiq_addon.store.migrations import MIGRATIONS, migrate
from homeiq_addon.store.schema_check import check_database
from homeiq_addon.times import US_PER_HOUR

HOUR = 494_000  # an epoch hour in 2026; day 20_583, hour 8 of it
DAY = HOUR // 24

# Version 5 rows: (entity_id, hour, count, min, max, sum, events, transitions,
# time_in_state JSON, last_state). Values a decimal form cannot hold exactly, a
# state that looks like a number with a trailing zero, a state of no entity ever stored.
HOURLY = [
    ("sensor.temp", HOUR, 3, -1.5, 1 / 3, 0.1 + 0.2, 3, 2, '{"21.50":1800.5}', "21.50"),
    ("sensor.temp", HOUR + 1, 1, 1e300, 1e300, 1e300, 1, 1, "{}", "1e300"),
    ("sensor.temp", HOUR + 30, 2, 4.0, 4.0, 8.0, 2, 0, "{}", "4"),
    ("binary_sensor.door", HOUR, 0, None, None, None, 2, 2,
     '{"on":1234.567891,"off":2365.432109}', "on"),
    ("climate.gone", HOUR + 2, 0, None, None, None, 1, 1, '{"heat_cool":3600.0}', None),
]  # fmt: skip
DAILY = [
    ("sensor.temp", DAY, 4, -1.5, 1e300, 1e300, 4, 3, "{}", "1e300"),
    ("binary_sensor.door", DAY, 0, None, None, None, 2, 2, '{"on":80000.25,"off":6399.75}', "on"),
]


def _version_5(path: Path) -> None:
    conn = sqlite3.connect(path / DB_NAME, autocommit=True)
    migrate(conn, upto=5)
    conn.execute("INSERT INTO entities (entity_id, domain) VALUES ('sensor.temp', 'sensor')")
    conn.execute(
        "INSERT INTO entities (entity_id, domain) VALUES ('binary_sensor.door', 'binary_sensor')"
    )
    conn.executemany("INSERT INTO rollups_hourly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", HOURLY)
    conn.executemany("INSERT INTO rollups_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", DAILY)
    conn.close()


def _point(row: tuple[object, ...], start_us: int) -> dict[str, object]:
    _, _, count, low, high, total, _, transitions, time_in_state, _ = row
    if count:
        assert isinstance(count, int) and isinstance(total, float)
        return {"count": count, "min": low, "max": high, "mean": total / count, "sum": total}
    assert isinstance(time_in_state, str)
    return {"transitions": transitions, "time_in_state": orjson.loads(time_in_state)}


def test_rollups_of_version_5_are_converted_in_place(tmp_path: Path) -> None:
    _version_5(tmp_path)
    store = Store.open_sync(tmp_path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        for entity_id in ("sensor.temp", "binary_sensor.door", "climate.gone"):
            rows = [r for r in HOURLY if r[0] == entity_id]
            hours = store.read_sync(
                lambda c, e=entity_id: history.rollup_points(
                    c, e, "hour", start_us=HOUR * US_PER_HOUR, end_us=(HOUR + 48) * US_PER_HOUR,
                    limit=100,
                )
            )  # fmt: skip
            got = [{k: v for k, v in p.items() if k != "start"} for p in hours]
            assert got == [_point(r, 0) for r in rows], entity_id
            # Exactly the same floats.
            for point, row in zip(hours, rows, strict=True):
                if row[2]:
                    assert repr(point["min"]) == repr(row[3])
        days = store.read_sync(
            lambda c: history.rollup_points(
                c, "binary_sensor.door", "day", start_us=DAY * 86_400_000_000,
                end_us=(DAY + 1) * 86_400_000_000, limit=10,
            )
        )  # fmt: skip
        assert [{k: v for k, v in p.items() if k != "start"} for p in days] == [_point(DAILY[1], 0)]
    finally:
        store.close_sync()
    # The converted file is exactly a database of this version's schema.
    assert check_database(tmp_path / DB_NAME) == len(MIGRATIONS)
