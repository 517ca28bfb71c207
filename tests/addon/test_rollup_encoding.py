"""Rollups stored in schema version 12's form read back exactly what version 11's form
read back: every figure of every period, the shortened forms (a single reading stored as
its number, a single event as the state it led to and when, figures implied by others)
and the cases that must not take them; and rollups stored in versions 7 and 11 are
converted in place to the same figures."""

from __future__ import annotations

from pathlib import Path
import sqlite3

import pytest

from homeiq_addon.retention import history
from homeiq_addon.store import rollup_figures, rollup_rows
from homeiq_addon.store.db import DB_NAME, Store
from homeiq_addon.store.migrations import MIGRATIONS, migrate
from homeiq_addon.store.rollup_rows import DAILY, HOURLY, Agg, Tier
from homeiq_addon.store.schema_check import check_database
from homeiq_addon.times import US_PER_DAY, US_PER_HOUR

HOUR_S = 3600.0
DAY_S = 86_400.0
HOUR_S_US = US_PER_HOUR


def _one(value: float, state: str, transitions: int = 1) -> Agg:
    return Agg(1, value, value, value, 1, transitions, {}, state)


# (name, figures of the period as the job builds them, what reads back): the same
# unless a figure is never kept (an entity with numbers keeps no time in state).
EDGES: list[tuple[str, Agg, Agg | None]] = [
    ("one reading", _one(21.5, "21.5"), None),
    ("one reading, no change", _one(21.5, "21.5", transitions=0), None),
    ("one whole reading", _one(1200.0, "1200"), None),
    ("one reading, state with a trailing zero", _one(21.5, "21.50"), None),
    ("one reading, state not its number", _one(21.5, "unknown"), None),
    ("one reading of zero", _one(0.0, "0"), None),
    ("one reading of minus zero", _one(-0.0, "-0.0"), None),
    ("one negative reading", _one(-3.25, "-3.25"), None),
    ("one reading of no short decimal", _one(1 / 3, str(1 / 3)), None),
    ("one huge reading", _one(1e300, "1e+300"), None),
    ("one reading, no state after it", Agg(1, 7.0, 7.0, 7.0, 1, 0, {}, None), None),
    ("one reading among other events", Agg(1, 7.0, 7.0, 7.0, 2, 2, {}, "7"), None),
    ("readings", Agg(3, -1.5, 1 / 3, 0.1 + 0.2, 3, 2, {}, "0.3"), None),
    ("readings of one value", Agg(4, 2.5, 2.5, 10.0, 4, 0, {}, "2.5"), None),
    (
        "readings, time in state not kept",
        Agg(2, 1.0, 2.0, 3.0, 2, 1, {"1": 1800.0, "2": 1800.0}, "2"),
        Agg(2, 1.0, 2.0, 3.0, 2, 1, {}, "2"),
    ),
    ("states filling the hour", Agg(0, None, None, None, 2, 2,
                                    {"on": 1234.567891, "off": 2365.432109}, "on"), None),
    ("one state the whole hour", Agg(0, None, None, None, 1, 0, {"on": HOUR_S}, "on"), None),
    ("three states filling the hour", Agg(0, None, None, None, 3, 3,
                                          {"a": 0.000001, "b": 1.5, "c": HOUR_S - 1.500001},
                                          "c"), None),
    ("a state known only from an event on", Agg(0, None, None, None, 1, 1,
                                                {"heat_cool": 1000.25}, "heat_cool"), None),
    ("states that look like numbers", Agg(0, None, None, None, 2, 2,
                                          {"-0.0": 600.0, "21.50": HOUR_S - 600.0}, "21.50"),
     None),
    ("unicode state", Agg(0, None, None, None, 1, 1, {"héat ☀": HOUR_S}, "héat ☀"), None),
    ("no state", Agg(0, None, None, None, 1, 0, {}, None), None),
]  # fmt: skip


def _fields(agg: Agg) -> tuple[object, ...]:
    """Every figure, floats by their exact text (so -0.0 and 0.0 differ)."""
    numbers = tuple(repr(v) for v in (agg.min, agg.max, agg.sum))
    times = tuple((s, repr(t)) for s, t in agg.time_in_state.items())
    return (agg.count, numbers, agg.events, agg.transitions, times, agg.last_state)


def _periods(tier: Tier) -> dict[int, Agg]:
    """The edge cases in one row, each in its own period of the tier (days: the hourly
    times scaled to a day, so the times that filled an hour fill the day)."""
    out = {}
    for place, (_, agg, _) in enumerate(EDGES):
        scale = DAY_S / HOUR_S if tier is DAILY else 1.0
        times = {s: t * scale for s, t in agg.time_in_state.items()}
        out[place % tier.per_row] = Agg(agg.count, agg.min, agg.max, agg.sum, agg.events,
                                        agg.transitions, times, agg.last_state)  # fmt: skip
    return out


@pytest.mark.parametrize("tier", [HOURLY, DAILY], ids=["hourly", "daily"])
def test_every_figure_reads_back_exactly(tier: Tier) -> None:
    periods = _periods(tier)
    back = rollup_rows.unpack(tier, rollup_rows.pack(tier, periods))
    assert list(back) == sorted(periods)
    for place, (name, agg, kept) in enumerate(EDGES):
        want = kept if kept is not None else agg
        scale = DAY_S / HOUR_S if tier is DAILY else 1.0
        times = {s: t * scale for s, t in want.time_in_state.items()}
        want = Agg(want.count, want.min, want.max, want.sum, want.events, want.transitions,
                   times, want.last_state)  # fmt: skip
        assert _fields(back[place % tier.per_row]) == _fields(want), name


@pytest.mark.parametrize(("name", "agg", "kept"), EDGES, ids=[e[0] for e in EDGES])
def test_a_period_alone_and_the_state_a_row_ends_in(name: str, agg: Agg, kept: Agg | None) -> None:
    for place in (0, 5, 23):
        blob = rollup_rows.pack_hours({place: agg})
        assert _fields(rollup_rows.unpack_hours(blob)[place]) == _fields(kept or agg)
        assert rollup_rows.final_state(blob) == agg.last_state
        assert rollup_rows.first_hour(blob) == place
    # The row's last period decides the state it ends in, whatever comes before it.
    blob = rollup_rows.pack_hours({2: _one(1.5, "1.5"), 9: agg, 1: EDGES[15][1]})
    assert rollup_rows.final_state(blob) == agg.last_state
    assert rollup_rows.first_hour(blob) == 1


def _states(events: int, transitions: int, times: dict[str, float], last: str) -> Agg:
    return Agg(0, None, None, None, events, transitions, times, last)


def test_shortened_forms_take_fewer_bytes() -> None:
    single = rollup_rows.pack_hours({5: _one(21.5, "21.5")})
    assert len(single) == 4  # head, hour and kind, the number at the row's scale (2 bytes)
    filled = _states(2, 2, {"on": 1234.567891, "off": 2365.432109}, "on")
    partial = _states(2, 2, {"on": 1234.567891, "off": 2365.432108}, "on")
    # The hour's second time is the rest of it: not stored.
    assert len(rollup_rows.pack_hours({0: partial})) - len(rollup_rows.pack_hours({0: filled})) >= 4
    # An hour of one event after an hour that ended "off": the new state and when.
    switched = _states(1, 1, {"off": 1000.5, "on": HOUR_S - 1000.5}, "on")
    held_on = _states(1, 0, {"on": HOUR_S}, "on")
    row = {3: switched, 4: held_on, 7: _states(1, 1, {"on": 0.25, "off": HOUR_S - 0.25}, "off")}
    blob = rollup_rows.pack_hours(row)
    # head: "on", "off" as words, the state before the row; per hour a byte, then
    # the µs of a change (4 bytes in an hour; with two states, each change leads to
    # the other); the hour held "on" is the byte alone.
    assert len(blob) == 1 + 2 + 1 + (1 + 4) + 1 + (1 + 4)
    assert [_fields(a) for a in rollup_rows.unpack_hours(blob).values()] == [
        _fields(a) for a in row.values()
    ]
    # Readings whose events, transitions and last state are implied, and a sum a few
    # units in the last place off its decimal (0.1 + 0.2 + 0.4 is 0.7000000000000001).
    readings = Agg(3, 0.1, 0.4, 0.1 + 0.2 + 0.4, 3, 3, {}, "0.4")
    blob = rollup_rows.pack_hours({0: readings})
    assert len(blob) == 1 + 1 + 1 + 1 + 1 + 1 + (1 + 1)
    assert _fields(rollup_rows.unpack_hours(blob)[0]) == _fields(readings)


# Rows whose periods lean on each other: the state the one before ended in, the row's
# first period on the state before the row, and chains where that is no help.
ROWS: list[dict[int, Agg]] = [
    {0: _states(1, 1, {"off": 10.0, "on": HOUR_S - 10.0}, "on"),
     1: _states(1, 0, {"on": HOUR_S}, "on"),
     2: _states(1, 1, {"on": 0.000001, "off": HOUR_S - 0.000001}, "off")},
    {5: _states(1, 0, {"on": HOUR_S}, "on"), 6: _states(1, 0, {"off": HOUR_S}, "off")},
    {1: _states(1, 1, {"heat": HOUR_S - 5.0}, "heat"),  # no state before: 1 transition
     2: _states(1, 0, {"heat": HOUR_S - 5.0}, "heat"),
     3: _states(1, 0, {"my state": 100.0, "heat": HOUR_S - 100.0}, "heat")},
    {0: _one(3.0, "3"), 1: _states(1, 0, {"3": HOUR_S}, "3"),
     2: _states(1, 1, {"3": 60.0, "unavailable": HOUR_S - 60.0}, "unavailable"),
     3: _states(1, 1, {"unavailable": 60.0, "4.50": HOUR_S - 60.0}, "4.50")},
    {0: _states(1, 1, {"off": 1.0, "on": 2.0}, "on"),  # times not filling the hour
     1: _states(0, 0, {"on": HOUR_S}, "on"), 2: Agg(0, None, None, None, 0, 0, {}, None),
     3: _states(1, 1, {"on": 7.0, "off": HOUR_S - 7.0}, "off")},
    {0: Agg(2, -0.0, 0.0, 0.0, 2, 1, {}, "0"), 1: Agg(2, 0.0, -0.0, -0.0, 2, 2, {}, "-0.0"),
     2: Agg(5, 1e-7, 123456789.1234567, 1e300, 7, 0, {}, None),
     3: Agg(2, 1 / 3, 2 / 3, 1.0, 2, 2, {}, "0.6666666666666666")},
]  # fmt: skip


@pytest.mark.parametrize("tier", [HOURLY, DAILY], ids=["hourly", "daily"])
@pytest.mark.parametrize("row", range(len(ROWS) + 1))
def test_rows_read_back_what_version_11_read_back(tier: Tier, row: int) -> None:
    """What the rollups read back (history, stats, the mirror) did not change."""
    periods = ROWS[row] if row < len(ROWS) else _periods(tier)
    if tier is DAILY:
        scale = DAY_S / HOUR_S
        periods = {p: Agg(a.count, a.min, a.max, a.sum, a.events, a.transitions,
                          {s: t * scale for s, t in a.time_in_state.items()}, a.last_state)
                   for p, a in periods.items()}  # fmt: skip
    before = rollup_figures.unpack_v11(
        tier.period_us, rollup_figures.pack_v11(tier.period_us, periods)
    )
    blob = rollup_rows.pack(tier, periods)
    after = rollup_rows.unpack(tier, blob)
    assert {p: _fields(a) for p, a in after.items()} == {p: _fields(a) for p, a in before.items()}
    assert list(after) == sorted(periods)
    assert rollup_rows.final_state(blob, tier) == periods[max(periods)].last_state
    assert rollup_rows.first_place(blob) == min(periods)


def test_daily_rollups_across_rows_through_the_store(tmp_path: Path) -> None:
    """A daily row holds 32 days: history reads a range over four rows, in order."""
    store = Store.open_sync(tmp_path)
    first_day = 20_030  # two days before a row boundary (20_032 = 626 * 32)
    days = {first_day + i: _one(float(i), str(i)) if i % 3 else EDGES[16][1] for i in range(70)}
    daily_one_state = Agg(0, None, None, None, 1, 0, {"on": DAY_S}, "on")
    days[first_day + 3] = daily_one_state

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO entities (entity_id, domain) VALUES ('sensor.x', 'sensor')")
        ref = rollup_rows.entity_refs(conn, ["sensor.x"])["sensor.x"]
        rollup_rows.write_days(conn, [(ref, d, agg) for d, agg in days.items()])

    try:
        store.submit(write).result()
        points = store.read_sync(
            lambda c: history.rollup_points(
                c, "sensor.x", "day", start_us=(first_day + 1) * US_PER_DAY,
                end_us=(first_day + 69) * US_PER_DAY, limit=1000,
            )
        )  # fmt: skip
        assert len(points) == 68
        for offset, point in enumerate(points, start=1):
            agg = days[first_day + offset]
            assert point["start"].startswith("20")
            if agg.count:
                assert (point["count"], point["min"], point["sum"]) == (1, agg.min, agg.sum)
            else:
                assert point["time_in_state"] == agg.time_in_state
        summary = store.read_sync(lambda c: rollup_rows.tier_summary(c, "daily"))
        assert summary == (70, first_day, first_day + 69)
        rows = store.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM rollups_daily").fetchone())
        assert rows == (4,)  # days 20_030-31, 20_032-63, 20_064-95, 20_096-99
    finally:
        store.close_sync()


def test_rollups_of_version_7_are_converted_in_place(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, autocommit=True)
    migrate(conn, upto=7)
    conn.execute("INSERT INTO entities (entity_id, domain) VALUES ('sensor.x', 'sensor')")
    ref = conn.execute("SELECT id FROM entities").fetchone()[0]
    day = 20_030
    hours = {h: agg for h, (_, agg, _) in enumerate(EDGES)}
    conn.execute("INSERT INTO rollups_hourly VALUES (?, ?, ?, ?)",
                 (ref, day, len(hours), rollup_figures.pack_v7_hours(hours)))  # fmt: skip
    daily = {day + i: EDGES[i][1] for i in range(len(EDGES))}  # across a row boundary
    conn.executemany(
        "INSERT INTO rollups_daily VALUES (?, ?, ?)",
        [(ref, d, rollup_figures.pack_v7_day(a)) for d, a in daily.items()],
    )
    conn.close()

    store = Store.open_sync(tmp_path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        got_hours = store.read_sync(lambda c: rollup_rows.read_hours(c, ref, day))
        for hour, (name, agg, kept) in enumerate(EDGES):
            assert _fields(got_hours[hour]) == _fields(kept or agg), name
        got_days = store.read_sync(lambda c: {d: rollup_rows.read_day(c, ref, d) for d in daily})
        for d, agg in daily.items():
            got = got_days[d]
            assert got is not None
            # Version 7 kept the same figures: what it read back is what 9 reads back.
            assert _fields(got) == _fields(
                rollup_figures.unpack_v7_day(rollup_figures.pack_v7_day(agg))
            )
        points = store.read_sync(
            lambda c: history.rollup_points(
                c, "sensor.x", "hour", start_us=day * US_PER_DAY,
                end_us=day * US_PER_DAY + 24 * US_PER_HOUR, limit=100,
            )
        )  # fmt: skip
        assert len(points) == len(EDGES)
    finally:
        store.close_sync()
    assert check_database(tmp_path / DB_NAME) == len(MIGRATIONS)


def test_rollups_of_version_11_are_converted_in_place(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME, autocommit=True)
    migrate(conn, upto=11)
    conn.execute("INSERT INTO entities (entity_id, domain) VALUES ('light.x', 'light')")
    ref = conn.execute("SELECT id FROM entities").fetchone()[0]
    day = 20_030
    rows = {day + i: ROWS[i % len(ROWS)] for i in range(4)} | {day + 9: _periods(HOURLY)}
    conn.executemany(
        "INSERT INTO rollups_hourly VALUES (?, ?, ?, ?)",
        [(ref, d, len(h), rollup_figures.pack_v11(HOUR_S_US, h)) for d, h in rows.items()],
    )
    months = {day // 32: _periods(DAILY), day // 32 + 1: {0: ROWS[0][0], 5: EDGES[0][1]}}
    conn.executemany(
        "INSERT INTO rollups_daily VALUES (?, ?, ?, ?)",
        [(ref, m, len(d), rollup_figures.pack_v11(US_PER_DAY, d)) for m, d in months.items()],
    )
    conn.close()

    store = Store.open_sync(tmp_path)
    try:
        assert store.schema_version == len(MIGRATIONS) == 12
        for d, hours in rows.items():
            got = store.read_sync(lambda c, d=d: rollup_rows.read_hours(c, ref, d))
            want = rollup_figures.unpack_v11(HOUR_S_US, rollup_figures.pack_v11(HOUR_S_US, hours))
            assert {h: _fields(a) for h, a in got.items()} == {
                h: _fields(a) for h, a in want.items()
            }
        for month, days in months.items():
            want = rollup_figures.unpack_v11(US_PER_DAY, rollup_figures.pack_v11(US_PER_DAY, days))
            for place, agg in want.items():
                got_day = store.read_sync(
                    lambda c, d=month * 32 + place: rollup_rows.read_day(c, ref, d)
                )
                assert got_day is not None
                assert _fields(got_day) == _fields(agg)
        summary = store.read_sync(lambda c: rollup_rows.tier_summary(c, "hourly"))
        newest = (day + 9) * 24 + max(rows[day + 9])
        assert summary == (sum(map(len, rows.values())), day * 24, newest)
    finally:
        store.close_sync()
    assert check_database(tmp_path / DB_NAME) == len(MIGRATIONS)
