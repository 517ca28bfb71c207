"""Pipeline edges: attribute selection, refused tokens, refused batches, HA stop, leftovers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import threading
from typing import Any

from helpers import FlakyProxy
from homeassistant import runner
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
import pytest

from custom_components.homeiq.const import (
    CAPTURE_EVENT_TYPES,
    CONF_BATCH_SIZE,
    CONF_CAPTURE_MODE,
    CONF_DROP_ATTRIBUTES,
    CONF_EVENT_TYPES,
    CONF_FLUSH_INTERVAL,
    CONF_INCLUDE_ENTITIES,
    CONF_KEEP_ATTRIBUTES,
    DOMAIN,
    SHUTDOWN_FLUSH_TIMEOUT,
)
from custom_components.homeiq.spool import spool_dir
from tests.spooled import spooled_events

ONLY_SEQ = {CONF_CAPTURE_MODE: "state_changes", CONF_INCLUDE_ENTITIES: ["sensor.seq"]}


async def wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not predicate():  # noqa: ASYNC110 - polling state the pipeline owns
            await asyncio.sleep(0.05)


async def test_keep_and_drop_attributes(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """keep_attributes wins when set; otherwise drop_attributes are left out."""
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_KEEP_ATTRIBUTES: ["a"]}
    )
    hass.states.async_set("sensor.seq", "1", {"a": 1, "b": 2, "c": 3})
    await entry.runtime_data.pipeline.async_flush()
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_KEEP_ATTRIBUTES: [], CONF_DROP_ATTRIBUTES: ["b"]}
    )
    await hass.async_block_till_done()
    hass.states.async_set("sensor.seq", "2", {"a": 1, "b": 2, "c": 3})
    await entry.runtime_data.pipeline.async_wait_delivered()
    events = (await entry.runtime_data.client.async_events(entity_id="sensor.seq"))["events"]
    assert [e["attributes"] for e in reversed(events)] == [{"a": 1}, {"a": 1, "c": 3}]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_token_keeps_events_and_asks_for_reauth(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A refused token never loses events: they wait in the spool while reauth is asked."""
    entry = await make_entry(addon_server.url, "not-the-token", **ONLY_SEQ)
    pipeline = entry.runtime_data.pipeline
    hass.states.async_set("sensor.seq", "1")
    await pipeline.async_flush()
    # The shipper itself hits the refusal (not only the coordinator's health poll).
    await wait_for(lambda: pipeline.shipper._reauth_started)
    await wait_for(
        lambda: any(
            flow["context"]["source"] == SOURCE_REAUTH
            for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        )
    )
    assert pipeline.backlog_events == 1
    assert not pipeline.connected
    assert pipeline.last_error
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_batch_is_counted_and_kept_aside(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A refused batch (4xx) counts as dropped and is kept as .rejected; later ones flow."""
    proxy = FlakyProxy(addon_server.url, "422")
    await proxy.start()
    entry = await make_entry(proxy.url, addon_server.token, **ONLY_SEQ)
    pipeline = entry.runtime_data.pipeline
    hass.states.async_set("sensor.seq", "1")
    await pipeline.async_wait_delivered()
    hass.states.async_set("sensor.seq", "2")
    await pipeline.async_wait_delivered()
    assert pipeline.dropped_total == 1
    assert len(list(spool_dir(hass, entry.entry_id).glob("*.rejected"))) == 1
    assert addon_server.row_count() == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
    await proxy.stop()


async def test_incompatible_addon_is_reported(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """An add-on speaking another API version is named in last_error."""
    proxy = FlakyProxy(addon_server.url, "old_api")
    await proxy.start()
    entry = await make_entry(proxy.url, addon_server.token, **ONLY_SEQ)
    pipeline = entry.runtime_data.pipeline
    await wait_for(lambda: pipeline.last_error is not None)
    assert "API version 99" in (pipeline.last_error or "")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await proxy.stop()


async def test_home_assistant_stop_spools_the_buffer(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """On HA stop the in-memory buffer reaches the spool (add-on down: nothing is lost)."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(addon_server.url, addon_server.token, **ONLY_SEQ)
    pipeline = entry.runtime_data.pipeline
    for i in range(10):
        hass.states.async_set("sensor.seq", str(i))
    assert pipeline.buffered_events == 10
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert pipeline.buffered_events == 0
    assert pipeline.backlog_events == 10
    files = list(spool_dir(hass, entry.entry_id).glob("*.json"))
    assert sum(int(path.name.split("_")[1]) for path in files) == 10
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_home_assistant_stop_events_are_spooled(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """homeassistant_stop and final_write are captured as HA stops, and spooled too."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url,
        addon_server.token,
        **{
            CONF_CAPTURE_MODE: CAPTURE_EVENT_TYPES,
            CONF_EVENT_TYPES: [EVENT_HOMEASSISTANT_STOP, EVENT_HOMEASSISTANT_FINAL_WRITE],
        },
    )
    pipeline = entry.runtime_data.pipeline
    # The order Home Assistant's stop fires them in.
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    assert pipeline.captured_total == 2
    assert pipeline.buffered_events == 0
    spooled = [
        event["event_type"]
        for path in sorted(spool_dir(hass, entry.entry_id).glob("*.json"))
        for event in spooled_events(path.read_bytes())
    ]
    assert spooled == [EVENT_HOMEASSISTANT_STOP, EVENT_HOMEASSISTANT_FINAL_WRITE]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_cancelled_flushes_and_spool_writes_lose_nothing(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Flush and spool-write tasks cancelled at any await (as HA stopping cancels them):
    the final flush spools every event, once and in order, and the pipeline knows it."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    pipeline = entry.runtime_data.pipeline
    total = 0
    for steps in range(20):
        # Past the size that starts a background flush: it serializes in slices of loop
        # time and queues its batches for the writer task; a flush that waits follows.
        for _ in range(2500):
            hass.states.async_set("sensor.seq", str(total))
            total += 1
        flush = hass.async_create_task(pipeline.async_flush(), eager_start=False)
        for _ in range(steps):
            await asyncio.sleep(0)
        flush.cancel()
        for task in asyncio.all_tasks():
            if task.get_name() in ("homeiq flush", "homeiq spool write"):
                task.cancel()
        await asyncio.sleep(0)
    assert await hass.config_entries.async_unload(entry.entry_id)
    values = [
        int(event["state"])
        for path in sorted(spool_dir(hass, entry.entry_id).glob("*.json"))
        for event in spooled_events(path.read_bytes())
    ]
    assert values == list(range(total))
    assert pipeline.captured_total == total
    # None was written behind the pipeline's back: the shipper knows them all.
    assert pipeline.backlog_events == total
    assert pipeline.dropped_total == 0


async def test_spool_stuck_past_the_stop_bound_counts_as_dropped(
    hass: HomeAssistant, addon_server: Any, make_entry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop while every executor thread is stuck: past the bound the unspooled events
    are counted as dropped and logged (the batch already queued for a thread is written
    when one frees up), so the account still closes."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    pipeline = entry.runtime_data.pipeline
    gate = threading.Event()
    stuck = [hass.async_add_executor_job(gate.wait) for _ in range(runner.MAX_EXECUTOR_WORKERS)]
    for i in range(600):  # a size-triggered flush queues these for a thread...
        hass.states.async_set("sensor.seq", str(i))
    async with asyncio.timeout(10):
        # Until the writer's job holds them: the flush takes them from the buffer first,
        # and a job started later would take the events below with them.
        while pipeline.writer.on_disk_soon != 600:  # noqa: ASYNC110
            await asyncio.sleep(0)
    for i in range(600, 850):  # ...and these wait in memory behind them
        hass.states.async_set("sensor.seq", str(i))
    # The pipeline's own stop (what unload and HA stop call): the rest of an unload may
    # want an executor thread too.
    stop = hass.async_create_task(pipeline.async_stop())
    try:
        async with asyncio.timeout(SHUTDOWN_FLUSH_TIMEOUT + 10):
            while pipeline.dropped_total == 0:  # noqa: ASYNC110 - the bound runs out first
                await asyncio.sleep(0.1)
    finally:
        gate.set()
    await asyncio.gather(*stuck)
    await stop
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()  # the write that waited for a thread ends
    assert "could not spool" in caplog.text
    spooled = [
        int(event["state"])
        for path in sorted(spool_dir(hass, entry.entry_id).glob("*.json"))
        for event in spooled_events(path.read_bytes())
    ]
    assert spooled == list(range(600))
    assert pipeline.dropped_total == 250
    assert pipeline.captured_total == 850
    assert pipeline.buffered_events == 0


async def test_unwritable_spool_counts_events_as_dropped(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A spool the disk refuses loses its events: counted as dropped, not silently."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(addon_server.url, addon_server.token, **ONLY_SEQ)
    pipeline = entry.runtime_data.pipeline
    directory = spool_dir(hass, entry.entry_id)
    # The spool's directory turns into a file: every write in it fails.
    await hass.async_add_executor_job(directory.rmdir)
    await hass.async_add_executor_job(directory.write_bytes, b"")
    for i in range(10):
        hass.states.async_set("sensor.seq", str(i))
    await pipeline.async_flush()
    assert pipeline.buffered_events == 0
    assert pipeline.backlog_events == 0
    assert pipeline.dropped_total == 10
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_flush_waits_for_batches_queued_before_it(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Full batches a background flush queued for the disk are spooled when async_flush returns."""
    await hass.async_add_executor_job(addon_server.stop)
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_BATCH_SIZE: 100}
    )
    pipeline = entry.runtime_data.pipeline
    for i in range(1000):
        hass.states.async_set("sensor.seq", str(i))
    await asyncio.sleep(0)  # the size-triggered flush serializes and queues ten batches
    await asyncio.sleep(0)
    assert pipeline.capture.buffer == []
    await pipeline.async_flush()  # nothing left to seal, yet it waits for the queued writes
    assert pipeline.buffered_events == 0
    assert pipeline.backlog_events == 1000
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_leftovers_and_removal(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """A crash's half-written file is discarded, strangers ignored; removing the entry cleans up."""
    entry = await make_entry(addon_server.url, addon_server.token, setup=False, **ONLY_SEQ)
    directory = spool_dir(hass, entry.entry_id)
    directory.mkdir(parents=True)
    (directory / "000000000001_5_X.tmp").write_bytes(b"{half")
    (directory / "notes.txt").write_text("not a batch")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert not (directory / "000000000001_5_X.tmp").exists()
    assert entry.runtime_data.pipeline.backlog_events == 0
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not directory.exists()


async def test_counters_tick(hass: HomeAssistant, addon_server: Any, make_entry: Any) -> None:
    """The 1 s tick samples the rate and flushes after the interval."""
    entry = await make_entry(
        addon_server.url, addon_server.token, **ONLY_SEQ, **{CONF_FLUSH_INTERVAL: 1}
    )
    pipeline = entry.runtime_data.pipeline
    for i in range(5):
        hass.states.async_set("sensor.seq", str(i))
    await wait_for(lambda: pipeline.backlog_events == 0 and pipeline.buffered_events == 0)
    assert pipeline.events_per_minute >= 0
    assert addon_server.row_count() >= 5
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_listener_only_appends(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """However many events arrive in one go, the listener only appends (invariant 1)."""
    entry = await make_entry(addon_server.url, addon_server.token, **ONLY_SEQ)
    pipeline = entry.runtime_data.pipeline
    for i in range(2000):
        hass.states.async_set("sensor.seq", str(i))
    # Nothing was serialized or spooled inside the listener's calls...
    assert len(pipeline.capture.buffer) == 2000
    assert pipeline.builder.count == 0
    assert pipeline.backlog_events == 0
    # ...the flush it scheduled runs afterwards.
    await pipeline.async_wait_delivered()
    assert addon_server.row_count() == 2000
    assert await hass.config_entries.async_unload(entry.entry_id)
