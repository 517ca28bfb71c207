"""The rollups' schema migrations: version 7 packed them a day per row (from a row per
entity and hour, keyed by the entity id text), version 11 made the figures shorter and
packed the daily tier 32 days per row, version 12 shorter again (store/rollup_rows.py).
Each converts the stored rollups in place.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from .rollup_figures import (
    DAY_US,
    HOUR_US,
    HOURS_PER_DAY,
    Agg,
    pack_v7_day,
    pack_v7_hours,
    pack_v11,
    unpack_v7_day,
    unpack_v7_hours,
)
from .rollup_rows import DAILY, HOURLY, convert_v11

_UNPACKED: Final = (
    "count, min, max, sum, events, transitions, time_in_state, last_state"  # v2..v5 columns
)
# The tables as versions 7 and 11 made them: 7 a daily row per entity and day, 11 the
# tables of today with the blob columns named ``hours`` and ``days``.
_HOURLY_V7: Final = """CREATE TABLE rollups_hourly (
        entity_ref INTEGER NOT NULL,
        day INTEGER NOT NULL,
        n INTEGER NOT NULL,
        hours BLOB NOT NULL,
        PRIMARY KEY (entity_ref, day)
    ) WITHOUT ROWID"""
_DAILY_V7: Final = """CREATE TABLE rollups_daily (
        entity_ref INTEGER NOT NULL,
        day INTEGER NOT NULL,
        figures BLOB NOT NULL,            -- pack_day()
        PRIMARY KEY (entity_ref, day)
    ) WITHOUT ROWID"""
_DAILY_V11: Final = """CREATE TABLE rollups_daily (
        entity_ref INTEGER NOT NULL,
        month INTEGER NOT NULL,
        n INTEGER NOT NULL,
        days BLOB NOT NULL,
        PRIMARY KEY (entity_ref, month)
    ) WITHOUT ROWID"""


def _unpacked(row: tuple[Any, ...]) -> Agg:
    count, low, high, total, events, transitions, time_in_state, last = row
    return Agg(count, low, high, total, events, transitions, json.loads(time_in_state), last)


def migrate_packed_rollups(conn: sqlite3.Connection) -> None:
    """Schema version 7: rollups packed a day per row, keyed by the entity's id.

    Converts the stored rollups in place. The old tables' triggers (the mirror's change
    log) go with them: the retention job now logs the rollups it writes itself.
    """
    for table in ("rollups_hourly", "rollups_daily"):
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_unpacked")
    conn.execute(_HOURLY_V7)
    conn.execute(_DAILY_V7)
    refs: dict[str, int] = dict(conn.execute("SELECT entity_id, id FROM entities").fetchall())

    def ref_of(entity_id: str) -> int:
        if entity_id not in refs:
            refs[entity_id] = int(
                conn.execute(
                    "INSERT INTO entities (entity_id, domain) VALUES (?, ?) RETURNING id",
                    (entity_id, entity_id.partition(".")[0]),
                ).fetchone()[0]
            )
        return refs[entity_id]

    def write(key: tuple[int, int], hours: dict[int, Agg]) -> None:
        conn.execute("INSERT INTO rollups_hourly VALUES (?, ?, ?, ?)",
                     (*key, len(hours), pack_v7_hours(hours)))  # fmt: skip

    key: tuple[int, int] | None = None
    hours: dict[int, Agg] = {}
    for entity_id, hour, *figures in conn.execute(
        f"SELECT entity_id, hour, {_UNPACKED} FROM rollups_hourly_unpacked ORDER BY entity_id, hour"
    ).fetchall():
        here = (ref_of(entity_id), hour // HOURS_PER_DAY)
        if here != key and key is not None:
            write(key, hours)
            hours = {}
        key = here
        hours[hour % HOURS_PER_DAY] = _unpacked(tuple(figures))
    if key is not None:
        write(key, hours)
    days = conn.execute(f"SELECT entity_id, day, {_UNPACKED} FROM rollups_daily_unpacked")
    conn.executemany(
        "INSERT INTO rollups_daily VALUES (?, ?, ?)",
        [(ref_of(r[0]), r[1], pack_v7_day(_unpacked(r[2:]))) for r in days.fetchall()],
    )
    for table in ("rollups_hourly_unpacked", "rollups_daily_unpacked"):
        conn.execute(f"DROP TABLE {table}")


def migrate_compact_rollups(conn: sqlite3.Connection) -> None:
    """Schema version 11: daily rollups packed 32 days per row; in both tiers a period of
    one numeric reading is just its number, and the last time in state of a period whose
    times fill it is not stored. Converts the stored rollups in place, row by row."""
    update = "UPDATE rollups_hourly SET hours = ? WHERE entity_ref = ? AND day = ?"
    last: tuple[int, int] = (-1, -1)
    while rows := conn.execute(
        "SELECT entity_ref, day, hours FROM rollups_hourly WHERE (entity_ref, day) > (?, ?)"
        " ORDER BY entity_ref, day LIMIT 10000",
        last,
    ).fetchall():
        conn.executemany(update, [(pack_v11(HOUR_US, unpack_v7_hours(b)), r, d)
                                  for r, d, b in rows])  # fmt: skip
        last = rows[-1][0], rows[-1][1]
    conn.execute("ALTER TABLE rollups_daily RENAME TO rollups_daily_v7")
    conn.execute(_DAILY_V11)

    def write(key: tuple[int, int], days: dict[int, Agg]) -> None:
        conn.execute("INSERT INTO rollups_daily VALUES (?, ?, ?, ?)",
                     (*key, len(days), pack_v11(DAY_US, days)))  # fmt: skip

    key: tuple[int, int] | None = None
    days: dict[int, Agg] = {}
    for ref, day, blob in conn.execute(
        "SELECT entity_ref, day, figures FROM rollups_daily_v7 ORDER BY entity_ref, day"
    ):
        here = (ref, day // DAILY.per_row)
        if here != key and key is not None:
            write(key, days)
            days = {}
        key = here
        days[day % DAILY.per_row] = unpack_v7_day(blob)
    if key is not None:
        write(key, days)
    conn.execute("DROP TABLE rollups_daily_v7")


def migrate_shorter_rollups(conn: sqlite3.Connection) -> None:
    """Schema version 12: shorter forms of the common periods, states common in Home
    Assistant as a number, one number scale per row. Converts the stored rollups in
    place, row by row; the blob columns take new names (``hour_figures``,
    ``day_figures``), so that a version 11 file that claims to be 12 fails the restore
    check instead of being misread."""
    for tier, old in ((HOURLY, "hours"), (DAILY, "days")):
        table, row, blob = tier.table, tier.row_column, tier.blob_column
        conn.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {blob}")
        update = f"UPDATE {table} SET {blob} = ? WHERE entity_ref = ? AND {row} = ?"
        last: tuple[int, int] = (-1, -1)
        while rows := conn.execute(
            f"SELECT entity_ref, {row}, {blob} FROM {table} WHERE (entity_ref, {row}) > (?, ?)"
            f" ORDER BY entity_ref, {row} LIMIT 10000",
            last,
        ).fetchall():
            conn.executemany(update, [(convert_v11(tier, b), r, k) for r, k, b in rows])
            last = rows[-1][0], rows[-1][1]
