"""Delivery: outages, restarts, lost acknowledgements, back-pressure and the spool cap."""

from __future__ import annotations

import asyncio
from pathlib import Path
import sqlite3
import subprocess
from typing import Any

from helpers import FlakyProxy, registries
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import orjson
import pytest

from custom_components.homeiq.const import (
    CONF_BATCH_SIZE,
    CONF_CAPTURE_MODE,
    CONF_INCLUDE_ENTITIES,
    CONF_SPOOL_CAP_MB,
    DOMAIN,
    ISSUE_SPOOL_FULL,
)
from custom_components.homeiq.spool import spool_dir
from custom_components.homeiq.wire import EVENT_KEYS, FACT_KEYS
from tests.conftest import REPO
from tests.spooled import spooled_events

ONLY_SEQ = {CONF_CAPTURE_MODE: "state_changes", CONF_INCLUDE_ENTITIES: ["sensor.seq"]}


def stored_values(addon: Any) -> list[float]:
    """numeric_value of every stored event in the order they were fired, as the events API
    reads them (read-only SQLite, through the view owners query: the events table keeps a
    number its state already says as 0). Not in commit order: two batches on the wire at
    once may commit in either order."""
    conn = sqlite3.connect(f"file:{addon.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        return [
            row[0]
            for row in conn.execute(
                "SELECT numeric_value FROM events_enriched ORDER BY time_fired, id"
            )
        ]
    finally:
        conn.close()


async def delivered(entry: Any) -> None:
    async with asyncio.timeout(60):
        await entry.runtime_data.pipeline.async_wait_delivered()


async def wait_for(predicate: Any) -> None:
    async with asyncio.timeout(30):
        while not predicate():  # noqa: ASYNC110 - polling a counter the pipeline owns
            await asyncio.sleep(0.05)


def spool_files(hass: HomeAssistant, entry: Any) -> list[Path]:
    return sorted(spool_dir(hass, entry.entry_id).glob("*.json"))


async def test_outage_then_back_delivers_once_in_order(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Add-on down while 1,000 events happen: all spooled, then delivered once, in order."""
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    pipeline = entry.runtime_data.pipeline
    await hass.async_add_executor_job(addon_server.stop)
    for i in range(1000):
        hass.states.async_set("sensor.seq", str(i))
    await pipeline.async_flush()
    await wait_for(lambda: pipeline.last_error is not None)
    assert not pipeline.connected
    assert pipeline.backlog_events == 1000
    assert len(spool_files(hass, entry)) == 10

    await hass.async_add_executor_job(addon_server.start)
    await delivered(entry)
    assert stored_values(addon_server) == [float(i) for i in range(1000)]
    assert pipeline.connected
    assert pipeline.backlog_events == 0
    assert pipeline.dropped_total == 0
    assert spool_files(hass, entry) == []
    assert await hass.config_entries.async_unload(entry.entry_id)


# The add-on as released before it read a batch's entities (the contract's
# FEATURE_BATCH_ENTITIES): the last commit without them.
BEFORE_BATCH_ENTITIES = "1796347"


def addon_source_at(revision: str, into: Path) -> Path:
    """The add-on's package as it was at `revision` (from this repository's history)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "addon/homeiq_addon"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"needs the repository's history (commit {revision}): {err}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "addon"


async def test_an_addon_of_an_earlier_release_gets_the_spooled_batches_in_full(
    hass: HomeAssistant, addon_server: Any, make_entry: Any, tmp_path: Path
) -> None:
    """The add-on is replaced by a release that reads no batch entities while batches
    written in that form wait in the spool: each goes again with every event carrying
    its entity's facts, and the next ones are written so. Nothing is dropped."""
    from homeiq_addon.contract import FEATURE_BATCH_ENTITIES

    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    client = entry.runtime_data.client
    pipeline = entry.runtime_data.pipeline
    await wait_for(lambda: FEATURE_BATCH_ENTITIES in client.addon_features)
    await hass.async_add_executor_job(addon_server.stop)
    user = await hass.auth.async_create_user("Alice")
    from homeassistant.core import Context

    for i in range(250):
        context = Context(user_id=user.id) if i % 50 == 0 else None
        hass.states.async_set("sensor.seq", str(i), {"step": i // 100}, context=context)
    await pipeline.async_flush()
    spooled = spool_files(hass, entry)
    assert len(spooled) == 3
    assert all(b'"entities":[' in path.read_bytes() for path in spooled)

    earlier = addon_source_at(BEFORE_BATCH_ENTITIES, tmp_path)
    # Not measured: the coverage of the add-on is this release's.
    addon_server.env.update(PYTHONPATH=str(earlier), COVERAGE_PROCESS_START="")
    # On a data dir of its own (with the same token): a database of a later schema is no
    # earlier release's to open.
    token = addon_server.token
    addon_server.data_dir = tmp_path / "earlier-data"
    addon_server.data_dir.mkdir()
    (addon_server.data_dir / "token").write_text(token)
    await hass.async_add_executor_job(addon_server.start)
    await delivered(entry)
    for i in range(250, 300):
        hass.states.async_set("sensor.seq", str(i), {"step": i // 100})
    await pipeline.async_flush()
    await delivered(entry)

    assert stored_values(addon_server) == [float(i) for i in range(300)]
    assert pipeline.dropped_total == 0
    assert not list(spool_dir(hass, entry.entry_id).glob("*.rejected"))
    assert FEATURE_BATCH_ENTITIES not in client.addon_features
    events = (await client.async_events(entity_id="sensor.seq", limit=300))["events"]
    by_state = {e["state"]: e for e in events}
    assert [by_state[str(i)]["attributes"] for i in (0, 99, 100, 299)] == [
        {"step": 0},
        {"step": 0},
        {"step": 1},
        {"step": 2},
    ]
    # An event's own cause stayed its own; the others took their entity's.
    assert by_state["50"]["cause"] == "user"
    assert by_state["51"]["cause"] != "user"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_batch_of_megabytes_delivered_whole(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A batch too big to keep in memory (written to its file part by part, read back from
    it) reaches the add-on whole: every event once, in order, its attributes intact."""
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 5000}
    )
    pipeline = entry.runtime_data.pipeline
    await hass.async_add_executor_job(addon_server.stop)  # the batch waits in the spool
    padding = "x" * 600
    for i in range(3000):
        hass.states.async_set("sensor.seq", str(i), {"note": f"{i} {padding}"})
    await pipeline.async_flush()
    (spooled,) = spool_files(hass, entry)  # one batch of all 3,000 events, megabytes big
    assert spooled.name.split("_")[1] == "3000"
    assert spooled.stat().st_size > 2 * 1024 * 1024
    assert spooled_events(spooled.read_bytes())[1234]["state"] == "1234"

    await hass.async_add_executor_job(addon_server.start)
    await delivered(entry)
    assert stored_values(addon_server) == [float(i) for i in range(3000)]
    client = entry.runtime_data.client
    events = (await client.async_events(entity_id="sensor.seq", limit=5))["events"]
    assert [e["attributes"] for e in events] == [
        {"note": f"{i} {padding}"} for i in range(2999, 2994, -1)
    ]
    assert pipeline.dropped_total == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_restart_with_backlog(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Unload with the add-on down puts the buffer in the spool; the next start ships it."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    for i in range(500):
        hass.states.async_set("sensor.seq", str(i))
    assert entry.runtime_data.pipeline.buffered_events == 500
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert sum(int(p.name.split("_")[1]) for p in spool_files(hass, entry)) == 500

    await hass.async_add_executor_job(addon_server.start)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await delivered(entry)
    assert stored_values(addon_server) == [float(i) for i in range(500)]
    assert spool_files(hass, entry) == []


async def test_spool_file_emptied_on_disk_is_set_aside_and_counted(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A spooled batch whose file lost its bytes (a power cut on some file systems leaves
    a renamed file empty) is refused by the add-on: its events are counted as dropped,
    the file is kept aside, and the batches around it are delivered."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    for i in range(300):
        hass.states.async_set("sensor.seq", str(i))
    assert await hass.config_entries.async_unload(entry.entry_id)
    files = spool_files(hass, entry)
    assert [int(p.name.split("_")[1]) for p in files] == [100, 100, 100]
    await hass.async_add_executor_job(files[1].write_bytes, b"")

    await hass.async_add_executor_job(addon_server.start)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await delivered(entry)
    pipeline = entry.runtime_data.pipeline
    assert stored_values(addon_server) == [float(i) for i in (*range(100), *range(200, 300))]
    assert pipeline.dropped_total == 100
    assert pipeline.last_error is None  # the batch after it was delivered
    rejected = list(spool_dir(hass, entry.entry_id).glob("*.rejected"))
    assert [p.stem for p in rejected] == [files[1].stem]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_spool_file_removed_while_waiting_is_counted_and_the_rest_delivered(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A spooled batch whose file is removed while the add-on is away (by hand, or by a
    file system check) is counted as dropped, and does not hold back the batches after
    it."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    pipeline = entry.runtime_data.pipeline
    for i in range(300):
        hass.states.async_set("sensor.seq", str(i))
    await pipeline.async_flush()  # the first send fails: the add-on is away
    files = spool_files(hass, entry)
    assert [int(p.name.split("_")[1]) for p in files] == [100, 100, 100]
    await hass.async_add_executor_job(files[0].unlink)  # the batch the shipper retries

    await hass.async_add_executor_job(addon_server.start)
    await delivered(entry)
    assert stored_values(addon_server) == [float(i) for i in range(100, 300)]
    assert pipeline.dropped_total == 100
    assert pipeline.backlog_events == 0
    assert spool_files(hass, entry) == []
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("mode", "count"),
    [
        # The add-on commits, the answer is lost: the resent batch id is not stored twice.
        pytest.param("drop_ack", 300, id="ack_lost_after_commit_stored_once"),
        # 429 with Retry-After: the batch waits as told and is then delivered.
        pytest.param("429", 50, id="rate_limited_then_delivered"),
        # A server error: the add-on is up, so the batch waits the back-off, then goes.
        pytest.param("500", 50, id="server_error_then_delivered"),
    ],
)
async def test_first_send_fails_then_delivered_once(
    hass: HomeAssistant, addon_server: Any, make_entry: Any, mode: str, count: int
) -> None:
    """A real HTTP hop spoils the first ingest; the batch is resent and stored exactly once."""
    proxy = FlakyProxy(addon_server.url, mode)
    await proxy.start()
    try:
        entry = await make_entry(proxy.url, addon_server.token, **ONLY_SEQ)
        for i in range(count):
            hass.states.async_set("sensor.seq", str(i))
        await delivered(entry)
        assert proxy.ingests == 2
        assert stored_values(addon_server) == [float(i) for i in range(count)]
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await proxy.stop()


@pytest.mark.parametrize(
    ("mode", "lost"),
    [
        # Committed, but its answer lost: sent again, the add-on answers the same ack.
        pytest.param("drop_ack", 0, id="answer_lost"),
        # A server error: it waits the back-off, then goes again.
        pytest.param("500", 0, id="server_error"),
        # Refused: set aside and counted as dropped; the other batches are not held up.
        pytest.param("422", 100, id="refused"),
    ],
)
async def test_two_batches_on_the_wire_one_failing(
    hass: HomeAssistant, addon_server: Any, make_entry: Any, mode: str, lost: int
) -> None:
    """A backlog goes two batches at a time; when one of them fails after the other was
    stored, every event is still stored once (or counted dropped), read back in order."""
    proxy = FlakyProxy(addon_server.url, mode, hold_first=True)
    await proxy.start()
    try:
        entry = await make_entry(
            proxy.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
        )
        pipeline = entry.runtime_data.pipeline
        for i in range(300):
            hass.states.async_set("sensor.seq", str(i))
        await delivered(entry)
        assert proxy.most_on_wire == 2
        assert proxy.ingests == 4 - (lost > 0)
        values = stored_values(addon_server)
        assert len(values) == 300 - lost
        assert values == sorted(set(values))
        assert pipeline.dropped_total == lost
        assert pipeline.backlog_events == 0
        assert spool_files(hass, entry) == []
        # The held batch's failure came after a later one's success: what the user sees
        # is the later news, as with one batch at a time (the refusal is in the log and
        # in the dropped count).
        assert pipeline.last_error is None
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await proxy.stop()


async def test_spool_cap_drops_oldest_counts_and_raises_issue(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """At the cap the oldest events go, the count is visible and a repair issue says so."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url,
        addon_server.token,
        **ONLY_SEQ,
        **{CONF_BATCH_SIZE: 100, CONF_SPOOL_CAP_MB: 1},
    )
    pipeline = entry.runtime_data.pipeline
    padding = "x" * 1000
    for i in range(3000):
        hass.states.async_set("sensor.seq", str(i), {"padding": padding})
        if i % 100 == 99:
            await pipeline.async_flush()
    assert pipeline.dropped_total > 0
    assert pipeline.spool_bytes <= pipeline.spool_cap_bytes
    assert pipeline.backlog_events + pipeline.dropped_total == 3000
    issue = ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_SPOOL_FULL)
    assert issue is not None
    assert issue.translation_placeholders == {
        "dropped": str(pipeline.dropped_total),
        "spool_cap_mb": "1",
    }

    await hass.async_add_executor_job(addon_server.start)
    await delivered(entry)
    values = stored_values(addon_server)
    # The oldest went (a batch already on the wire is never dropped); the rest arrive, once each.
    assert len(values) == 3000 - pipeline.dropped_total
    assert values == sorted(set(values))
    assert len(values) < 3000
    assert values[-100:] == [float(i) for i in range(2900, 3000)]
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    "addon_answered", [True, False], ids=["columns", "before the add-on answered"]
)
async def test_payloads_pass_the_addon_validator(
    hass: HomeAssistant, addon_server: Any, make_entry: Any, addon_answered: bool
) -> None:
    """Contract: the integration's real spooled bodies pass the add-on's validator,
    homeiq_addon.ingest.decode.decode_batch: as blocks of columns referring to each entity
    once per batch once the add-on said it reads them (its health's features), as events
    each carrying its entity's fields before it answered."""
    from homeiq_addon.ingest.decode import decode_batch

    await registries(hass)
    if not addon_answered:
        await hass.async_add_executor_job(addon_server.stop)
    hass.states.async_set("weather.home", "rainy", {"temperature": 4})
    entry = await make_entry(
        addon_server.url,
        addon_server.token,
        weather_entity="weather.home",
        enrich_sun=True,
        enrich_people=True,
        include_state_reported=True,
    )
    coordinator = entry.runtime_data.coordinator
    captured_before = 0
    earlier: set[Path] = set()
    if addon_answered:
        await wait_for(lambda: coordinator.data is not None and coordinator.data.addon_available)
        await entry.runtime_data.pipeline.async_wait_delivered()
        await hass.async_add_executor_job(addon_server.stop)
        await coordinator.async_refresh()  # it finds the add-on gone (sets its sensors)
        await hass.async_block_till_done()
        # What was captured meanwhile (the sensors' states) is spooled apart.
        await entry.runtime_data.pipeline.async_flush()
        captured_before = entry.runtime_data.pipeline.captured_total
        earlier = set(spool_files(hass, entry))
    user = await hass.auth.async_create_user("Alice")
    from homeassistant.core import Context

    hass.states.async_set(
        "sensor.plug_power",
        "7.25",
        {"unit_of_measurement": "W", "tags": {"a", "b"}, "nested": {"n": [1, 2.5, None]}},
        context=Context(user_id=user.id),
    )
    hass.states.async_set("sensor.plug_power", "7.25")  # state_reported
    hass.states.async_set("binary_sensor.door", "on")
    hass.states.async_set("sensor.text", "not a number")
    hass.states.async_set("sensor.day", "2026-11-22")  # starts like a number, is not one
    hass.states.async_set("sensor.nan", "nan")
    hass.states.async_remove("binary_sensor.door")
    hass.bus.async_fire("automation_triggered", {"name": "A", "entity_id": "automation.a"})
    hass.bus.async_fire("homeiq_odd", {1: "int key", "when": hass.states.get("sensor.nan")})
    # The entry's first refresh (the add-on is down) sets its sensors' states: wait for it,
    # or on 2026.10 those may be captured just after the flush.
    await wait_for(lambda: coordinator.data.unreachable_since is not None)
    await hass.async_block_till_done()
    await entry.runtime_data.pipeline.async_flush()
    files = spool_files(hass, entry)
    assert files
    events = 0
    batch_ids = []
    forms: set[str] = set()
    keys: set[str] = set()
    fact_keys: set[str] = set()
    for path in files:
        batch = orjson.loads(path.read_bytes())
        decode_batch(path.read_bytes())
        if path in earlier:
            continue
        forms.add("columns" if "columns" in batch else "events")
        blocks = batch.get("columns", ())
        events += len(batch.get("events", ())) + sum(len(b["time_fired"]) for b in blocks)
        batch_ids.append(batch["batch_id"])
        keys.update(*batch.get("events", ()), *blocks)
        fact_keys.update(*batch.get("entities", ()))
    assert events == entry.runtime_data.pipeline.captured_total - captured_before
    # The keys the encoder declares it writes (checked against the contract at import),
    # as an event's or as a column's name.
    assert keys <= EVENT_KEYS
    assert fact_keys <= FACT_KEYS
    if addon_answered:
        # The add-on reads columns and entities (its health said so): every batch is in
        # columns, and its state events refer to their entities.
        assert forms == {"columns"}
        assert {"entity", "context_user_id", "cause", "data", "outdoor_temperature"} <= keys
        assert {"entity_id", "domain", "attributes", "unit", "cause"} <= fact_keys
    else:
        assert forms == {"events"}
        assert "entity" not in keys
        assert not fact_keys

    await hass.async_add_executor_job(addon_server.start)
    await delivered(entry)
    # Every spooled batch stored whole (what the sensors report meanwhile comes on top).
    placeholders = ",".join("?" * len(batch_ids))
    conn = sqlite3.connect(f"file:{addon_server.data_dir / 'homeiq.db'}?mode=ro", uri=True)
    try:
        accepted = conn.execute(
            f"SELECT COUNT(*), SUM(accepted) FROM batches WHERE batch_id IN ({placeholders})",
            batch_ids,
        ).fetchone()
    finally:
        conn.close()
    assert accepted == (len(batch_ids), events)
    assert entry.runtime_data.pipeline.dropped_total == 0
    assert await hass.config_entries.async_unload(entry.entry_id)
