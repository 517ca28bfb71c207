"""A restore takes only a whole HomeIQ database of a schema the add-on knows.

Anything else (other columns under the right table names, a table less, one trigger,
view or index more, a damaged or foreign file, a newer schema) is refused with a 422
that says what is wrong; the live data stays as it was, ingest goes on storing and every
route answers. A genuine backup, also one an older schema version wrote, is restored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
import shutil
import sqlite3
from typing import Any

import aiohttp
import pytest

from homeiq_addon.store.migrations import MIGRATIONS, migrate
from homeiq_addon.store.schema_check import describe, differences, expected_schemas
from tests.addon.factory import BASE, state_event, write_into
from tests.addon.retention_data import T0, Api, event
from tests.conftest import AddonProcess

METER = "sensor.meter"
_WINDOW = "start=2025-12-31T00:00:00Z&end=2026-01-03T00:00:00Z"
MAIN_ROUTES = (
    "/api/v1/health",
    "/api/v1/stats",
    "/api/v1/stats?period=1h",
    "/api/v1/event-rate",
    "/api/v1/events",
    f"/api/v1/events?entity_id={METER}",
    f"/api/v1/history/{METER}?{_WINDOW}",
    f"/api/v1/history/{METER}?{_WINDOW}&resolution=hour",
    "/api/v1/retention/policies",
    "/api/v1/retention/stats",
    "/api/v1/backups",
    "/api/openapi.json",
)


@pytest.fixture
async def api(addon_server: AddonProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(addon_server, session)


def readings(start: int, n: int) -> list[dict[str, Any]]:
    return [
        event(T0 + timedelta(minutes=start + k), METER, str(k), numeric=float(k)) for k in range(n)
    ]


def live_state(path: Path) -> dict[str, Any]:
    """What a client could tell apart, read straight from the file; and its schema."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "events": conn.execute(
                "SELECT id, time_fired, entity_id, state FROM events_enriched ORDER BY id"
            ).fetchall(),
            "counters": conn.execute("SELECT * FROM counters ORDER BY name").fetchall(),
            "batches": conn.execute("SELECT batch_id, accepted FROM batches ORDER BY 1").fetchall(),
            "schema": describe(conn),
            "version": conn.execute("PRAGMA user_version").fetchone()[0],
        }
    finally:
        conn.close()


async def carries_on(api: Api, server: AddonProcess, events_before: int) -> None:
    """Ingest stores (and keeps) a new event, and every main route answers 2xx."""
    await api.ingest([event(T0 + timedelta(days=1), "sensor.after_restore", "on")])
    status, found = await api.call("GET", "/api/v1/events?entity_id=sensor.after_restore")
    assert status == 200, found
    assert [e["state"] for e in found["events"]] == ["on"]
    assert server.row_count() == events_before + 1
    for route in MAIN_ROUTES:
        status, answer = await api.call("GET", route)
        assert 200 <= status < 300, (route, status, answer)


def _copy_then(*statements: str) -> Callable[[Path, Path], None]:
    """A copy of the genuine backup with ``statements`` run on it."""

    def build(genuine: Path, target: Path) -> None:
        shutil.copyfile(genuine, target)
        conn = sqlite3.connect(target, autocommit=True)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    return build


def _same_names_other_columns(genuine: Path, target: Path) -> None:
    conn = sqlite3.connect(target, autocommit=True)
    for table in ("events", "entities", "event_types", "dirty_hours", "counters"):
        conn.execute(f"CREATE TABLE {table} (x TEXT, y TEXT)")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    conn.close()


def _older_schema_numbered_current(genuine: Path, target: Path) -> None:
    _older(target, len(MIGRATIONS) - 1)
    conn = sqlite3.connect(target, autocommit=True)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    conn.close()


def _garbage(genuine: Path, target: Path) -> None:
    target.write_bytes(b"this is not a database\n" * 500)


def _empty(genuine: Path, target: Path) -> None:
    target.write_bytes(b"")


def _truncated(genuine: Path, target: Path) -> None:
    target.write_bytes(genuine.read_bytes()[: genuine.stat().st_size // 3])


def _corrupt_page(genuine: Path, target: Path) -> None:
    data = bytearray(genuine.read_bytes())
    # Scribble over pages in the middle: the header still says "SQLite format 3".
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xa5" * 8192
    target.write_bytes(bytes(data))


def _index_out_of_step(genuine: Path, target: Path) -> None:
    """Pages SQLite reads without complaint, but an index that disagrees with its table."""
    shutil.copyfile(genuine, target)
    conn = sqlite3.connect(target, autocommit=True)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'batches_by_time'").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = 'CREATE INDEX batches_by_time ON batches (accepted)'"
        " WHERE name = 'batches_by_time'"
    )
    conn.close()
    conn = sqlite3.connect(target, autocommit=True)
    # Indexed under its count, not under its time.
    conn.execute("INSERT INTO batches VALUES ('out-of-step', 5, 1, 0.5, NULL, NULL)")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'batches_by_time'", (sql,))
    conn.close()


# The last version before the deferred index's migration (which adds the 'settled' row).
_BEFORE_INDEXD = 2


def _a_counter_row_too_many_for_migrating(genuine: Path, target: Path) -> None:
    """An older version's file the migration cannot bring up: its copy, not the live data."""
    _older(target, _BEFORE_INDEXD)
    conn = sqlite3.connect(target, autocommit=True)
    conn.execute("INSERT INTO counters VALUES ('settled', 0)")
    conn.close()


def _older(target: Path, version: int) -> None:
    """A database as schema ``version`` left it, with 7 events of one sensor."""
    conn = sqlite3.connect(target, autocommit=True)
    try:
        migrate(conn, upto=version)
        conn.execute("BEGIN")
        write_into(conn, [state_event(i, entity_id="sensor.old") for i in range(7)])
        conn.execute("COMMIT")
    finally:
        conn.close()


HOSTILE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "same_table_names_other_columns": (
        _same_names_other_columns,
        "table events: column id is missing",
    ),
    "renamed_column": (
        _copy_then("ALTER TABLE events RENAME COLUMN data TO payload"),
        "table events: column data is missing, unexpected column payload",
    ),
    "dropped_table": (_copy_then("DROP TABLE dirty_hours"), "table dirty_hours is missing"),
    "extra_trigger": (
        _copy_then("CREATE TRIGGER x AFTER INSERT ON events BEGIN DELETE FROM events; END"),
        "unexpected trigger x on events",
    ),
    "changed_trigger": (
        _copy_then(
            "DROP TRIGGER events_deleted",
            "CREATE TRIGGER events_deleted AFTER DELETE ON events BEGIN"
            " UPDATE counters SET value = value - 2 WHERE name = 'events'; END",
        ),
        "trigger events_deleted on events is defined otherwise",
    ),
    "extra_view": (_copy_then("CREATE VIEW v AS SELECT 1"), "unexpected view v"),
    "changed_view": (
        _copy_then("DROP VIEW events_enriched", "CREATE VIEW events_enriched AS SELECT 1 AS id"),
        "view events_enriched is defined otherwise",
    ),
    "extra_index": (
        _copy_then("CREATE INDEX events_by_origin ON events (origin)"),
        "unexpected index events_by_origin on events",
    ),
    "missing_index": (_copy_then("DROP INDEX batches_by_time"), "index batches_by_time is missing"),
    "index_on_other_columns": (
        _copy_then(
            "DROP INDEX batches_by_time", "CREATE INDEX batches_by_time ON batches (accepted)"
        ),
        "index batches_by_time on batches is defined otherwise",
    ),
    "column_type": (
        _copy_then(
            "DROP TABLE batch_rejects",
            "CREATE TABLE batch_rejects (minute INTEGER PRIMARY KEY, n TEXT NOT NULL)",
        ),
        "table batch_rejects: column n: type TEXT instead of INTEGER",
    ),
    "column_default": (
        _copy_then(
            "DROP TABLE batch_rejects",
            "CREATE TABLE batch_rejects (minute INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 5)",
        ),
        "table batch_rejects: column n: default 5 instead of none",
    ),
    "column_nullable": (
        _copy_then(
            "DROP TABLE batch_rejects",
            "CREATE TABLE batch_rejects (minute INTEGER PRIMARY KEY, n INTEGER)",
        ),
        "table batch_rejects: column n: no NOT NULL",
    ),
    "extra_constraint": (
        _copy_then(
            "DROP TABLE batch_rejects",
            "CREATE TABLE batch_rejects (minute INTEGER PRIMARY KEY,"
            " n INTEGER NOT NULL CHECK (n < 0))",
        ),
        "table batch_rejects: its constraints or column order differ",
    ),
    "extra_table": (
        _copy_then("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"),
        "unexpected table notes",
    ),
    "older_schema_numbered_current": (
        _older_schema_numbered_current,
        # What the newest migration (12, rollups in a shorter form) changes: a version 11
        # blob read as 12 would be misread.
        "table rollups_daily: column day_figures is missing, unexpected column days",
    ),
    "counter_row_deleted": (
        _copy_then("DELETE FROM counters WHERE name = 'events'"),
        "the counters table lacks the row(s) 'events'",
    ),
    "counter_not_a_number": (
        _copy_then("UPDATE counters SET value = 'many' WHERE name = 'events'"),
        "the counters row(s) 'events' hold no whole number",
    ),
    "watermark_beyond_events": (
        _copy_then("UPDATE counters SET value = 1000 WHERE name = 'settled'"),
        "the counters mark the events up to id 1000 as indexed, beyond the newest event (60)",
    ),
    "not_sqlite": (_garbage, "not a SQLite database"),
    "empty_file": (_empty, "not a SQLite database"),
    "truncated": (_truncated, "integrity check failed"),
    "corrupt_page": (_corrupt_page, "integrity check failed"),
    "index_out_of_step": (_index_out_of_step, "integrity check failed: row 2 missing from index"),
    "no_schema_version": (
        _copy_then("PRAGMA user_version = 0"),
        "not a HomeIQ database (it has no schema version)",
    ),
    "newer_schema": (
        _copy_then("PRAGMA user_version = 99"),
        f"schema version 99 is newer than this add-on's ({len(MIGRATIONS)}); upgrade the add-on",
    ),
    "unmigratable_older_version": (
        _a_counter_row_too_many_for_migrating,
        f"cannot be brought from schema version {_BEFORE_INDEXD} to {len(MIGRATIONS)}",
    ),
}


@pytest.mark.parametrize("kind", HOSTILE)
async def test_a_hostile_backup_is_refused_and_everything_carries_on(
    api: Api, addon_server: AddonProcess, kind: str
) -> None:
    await api.ingest(readings(0, 60))
    status, genuine = await api.call("POST", "/api/v1/backups")
    assert status == 201, genuine
    folder = addon_server.data_dir / "backups"
    build, message = HOSTILE[kind]
    build(folder / genuine["name"], folder / f"{kind}.db")
    await api.ingest(readings(60, 40))  # newer than the backup: must survive the attempt
    live = addon_server.data_dir / "homeiq.db"
    before = live_state(live)
    files_before = sorted(p.name for p in folder.iterdir())

    status, answer = await api.call("POST", f"/api/v1/backups/{kind}.db/restore")

    assert status == 422, answer
    assert answer["error"] == "invalid_backup"
    assert answer["message"].startswith(f"{kind}.db: ")
    assert message in answer["message"]
    assert live_state(live) == before
    # Nothing kept "before restore", no copy left behind.
    assert sorted(p.name for p in folder.iterdir()) == files_before
    await carries_on(api, addon_server, len(before["events"]))


async def test_a_refusal_names_what_differs_and_counts_the_rest(
    api: Api, addon_server: AddonProcess
) -> None:
    folder = addon_server.data_dir / "backups"
    folder.mkdir(exist_ok=True)
    conn = sqlite3.connect(folder / "notes.db", autocommit=True)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    status, answer = await api.call("POST", "/api/v1/backups/notes.db/restore")
    assert status == 422, answer
    missing = len(expected_schemas()[0].objects)
    assert answer["message"] == (
        "notes.db: not a HomeIQ database: its schema differs from schema version 1's:"
        " table strings is missing; table event_types is missing; table entities is missing;"
        " table attributes is missing; index attributes_by_hash is missing; table registry"
        " is missing; table causes is missing; table snapshots is missing;"
        f" and {missing - 8 + 1} more"
    )


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
async def test_a_backup_of_an_older_schema_is_restored_and_migrated(
    api: Api, addon_server: AddonProcess, version: int
) -> None:
    await api.ingest(readings(0, 20))
    folder = addon_server.data_dir / "backups"
    folder.mkdir(exist_ok=True)
    _older(folder / "older.db", version)

    status, answer = await api.call("POST", "/api/v1/backups/older.db/restore")

    assert status == 200, answer
    assert answer["schema_version"] == len(MIGRATIONS)
    assert answer["backup_schema_version"] == version
    assert answer["events_stored"] == 7
    live = live_state(addon_server.data_dir / "homeiq.db")
    assert live["version"] == len(MIGRATIONS)
    assert differences(expected_schemas()[-1].objects, live["schema"]) == []
    assert not list(folder.glob(".restoring*"))  # the checked copy is gone
    # The backup file itself was not migrated: it can be restored again.
    conn = sqlite3.connect(f"file:{folder / 'older.db'}?mode=ro", uri=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    conn.close()
    window = f"start={(BASE - timedelta(hours=1)).isoformat()}&end={BASE + timedelta(hours=1)}"
    window = window.replace("+", "%2B")
    status, history = await api.call("GET", f"/api/v1/history/sensor.old?{window}")
    assert status == 200, history
    assert len(history["points"]) == 7
    await carries_on(api, addon_server, 7)


@pytest.mark.parametrize(
    "change",
    [
        "PRAGMA page_size = 8192",  # SQLite cannot copy it into the live WAL database as is
        "PRAGMA auto_vacuum = NONE",  # retention could not hand space back any more
        "ANALYZE",  # statistics tables: not part of the schema, harmless
    ],
)
async def test_a_genuine_backup_stored_differently_is_restored(
    api: Api, addon_server: AddonProcess, change: str
) -> None:
    await api.ingest(readings(0, 30))
    status, genuine = await api.call("POST", "/api/v1/backups")
    assert status == 201, genuine
    folder = addon_server.data_dir / "backups"
    _copy_then(change, "VACUUM")(folder / genuine["name"], folder / "changed.db")
    await api.ingest(readings(30, 10))

    status, answer = await api.call("POST", "/api/v1/backups/changed.db/restore")

    assert status == 200, answer
    assert answer["events_stored"] == 30
    live = addon_server.data_dir / "homeiq.db"
    conn = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    conn.close()
    await carries_on(api, addon_server, 30)


async def test_sql_written_in_another_layout_is_the_same_schema(
    api: Api, addon_server: AddonProcess
) -> None:
    """An older add-on may have worded its migrations' comments and spacing otherwise."""
    await api.ingest(readings(0, 30))
    status, genuine = await api.call("POST", "/api/v1/backups")
    assert status == 201, genuine
    folder = addon_server.data_dir / "backups"
    shutil.copyfile(folder / genuine["name"], folder / "layout.db")
    conn = sqlite3.connect(folder / "layout.db", autocommit=True)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_enriched'").fetchone()
    conn.execute("DROP VIEW events_enriched")
    conn.execute("-- the view\n" + " \n  ".join(sql.split()).replace("SELECT", "select /* */"))
    conn.close()

    status, answer = await api.call("POST", "/api/v1/backups/layout.db/restore")

    assert status == 200, answer
    assert answer["events_stored"] == 30
