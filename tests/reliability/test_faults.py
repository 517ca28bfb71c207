"""Nothing lost under faults: a plain Home Assistant against the real add-on process.

Every test ends with the same account: every event the integration captured is stored by
the add-on, or waiting in the spool, or counted as dropped; and none is stored twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
import time
from typing import Any

from plain_hass import SENSOR, PlainHass, sensor_values, set_states
import pytest

from custom_components.homeiq.const import (
    CONF_BATCH_SIZE,
    CONF_CAPTURE_MODE,
    CONF_FLUSH_INTERVAL,
    CONF_INCLUDE_ENTITIES,
    CONF_SPOOL_CAP_MB,
    ISSUE_SPOOL_FULL,
)
from custom_components.homeiq.pipeline import Pipeline

# Only the test's sensor: counts stay exact while Home Assistant runs on.
ONLY_SENSOR = {CONF_CAPTURE_MODE: "state_changes", CONF_INCLUDE_ENTITIES: [SENSOR]}
DROPPED_SENSOR = "sensor.homeiq_dropped_events"


@pytest.fixture
def instances() -> Iterator[list[PlainHass]]:
    """Plain Home Assistants a test started; stopped if the test did not get that far."""
    started: list[PlainHass] = []
    yield started
    for instance in started:
        instance.stop()


@pytest.fixture
def start_hass(instances: list[PlainHass], tmp_path: Path) -> Callable[[], PlainHass]:
    """Start a plain Home Assistant on the test's config dir (again after a stop)."""

    def start() -> PlainHass:
        instance = PlainHass(tmp_path / "config")
        instances.append(instance)
        return instance

    return start


def stored_values(addon: Any) -> list[int]:
    """The stored values of the test's sensor in the order they were fired, as the events API
    reads them (two batches on the wire at once may commit in either order)."""
    return [
        int(row[0])
        for row in addon.query("SELECT numeric_value FROM events_enriched ORDER BY time_fired, id")
    ]


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def delivered(instance: PlainHass, pipeline: Pipeline) -> None:
    """Wait until the add-on acknowledged everything captured so far."""
    instance.run(pipeline.async_wait_delivered(), timeout=60)


def assert_accounted(captured: int, stored: int, spooled: int, dropped: int) -> None:
    """captured = stored + spooled + dropped."""
    assert (stored, spooled, dropped) != (0, 0, 0) or captured == 0
    assert stored + spooled + dropped == captured, {
        "captured": captured,
        "stored": stored,
        "spooled": spooled,
        "dropped": dropped,
    }


@pytest.mark.parametrize("count", [10_000, 15_000, 20_000])
def test_stop_while_a_flush_is_paused_between_slices(
    addon_server: Any, start_hass: Callable[[], PlainHass], count: int
) -> None:
    """HA stops while a flush is half-way through its batches: all reach the spool.

    HA cancels background tasks (the flush) before it fires homeassistant_stop; what the
    flush had taken must be spooled by the stop anyway, and homeassistant_stop with it.
    """
    addon_server.stop()  # nothing ships: every event must be found in the spool
    ha = start_hass()
    pipeline = ha.set_up_entry(addon_server.url, addon_server.token, **{CONF_FLUSH_INTERVAL: 60})

    async def fire_until_a_flush_pauses() -> bool:
        await set_states(ha.hass, 0, count)
        # The size-triggered flush takes the buffer and serializes it a slice at a time.
        for _ in range(100):
            await asyncio.sleep(0)
            if pipeline.serializing_events and not pipeline.capture.buffer:
                return True  # paused between slices: the stop lands right now
        return False

    assert ha.stop(before=fire_until_a_flush_pauses)
    events = ha.spool_events()
    assert sorted(sensor_values(events)) == list(range(count))  # each one, once
    assert "homeassistant_stop" in {event["event_type"] for event in events}
    assert_accounted(
        pipeline.captured_total, addon_server.row_count(), len(events), pipeline.dropped_total
    )


def test_addon_killed_during_a_stream(
    addon_server: Any, start_hass: Callable[[], PlainHass]
) -> None:
    """SIGKILL while batches are on the wire: after its restart, all stored once, in order."""
    count = 8000
    ha = start_hass()
    pipeline = ha.set_up_entry(
        addon_server.url,
        addon_server.token,
        **ONLY_SENSOR,
        **{CONF_BATCH_SIZE: 200, CONF_FLUSH_INTERVAL: 1},
    )

    async def stream() -> None:
        for first in range(0, count, 100):
            await set_states(ha.hass, first, 100)
            await asyncio.sleep(0.02)

    streaming = asyncio.run_coroutine_threadsafe(stream(), ha.loop)
    wait_until(lambda: addon_server.row_count() >= 1000)
    addon_server.kill()
    assert not streaming.done()  # killed mid-stream
    addon_server.start()
    streaming.result(60)
    delivered(ha, pipeline)
    assert stored_values(addon_server) == list(range(count))
    assert_accounted(
        pipeline.captured_total,
        addon_server.row_count(),
        len(ha.spool_events()),
        pipeline.dropped_total,
    )
    assert pipeline.backlog_events == pipeline.buffered_events == 0


def test_delivery_resumes_within_2_s_of_the_addon_answering(
    addon_server: Any, start_hass: Callable[[], PlainHass]
) -> None:
    """After an outage long enough for the back-off to grow, delivery does not wait it out."""
    ha = start_hass()
    pipeline = ha.set_up_entry(
        addon_server.url, addon_server.token, **ONLY_SENSOR, **{CONF_FLUSH_INTERVAL: 1}
    )
    ha.run(set_states(ha.hass, 0, 100))
    delivered(ha, pipeline)
    addon_server.stop()
    ha.run(set_states(ha.hass, 100, 1000))
    ha.run(pipeline.async_flush())
    # The back-off doubles from 1 s: after 12 s of failures a retry is seconds away.
    time.sleep(12)
    assert pipeline.backlog_events == 1000
    addon_server.start()  # returns once the add-on answers its health check
    wait_until(lambda: addon_server.row_count() == 1100, timeout=2)
    assert stored_values(addon_server) == list(range(1100))
    # Committed is not yet acknowledged: the spool lets the batches go once the answers
    # reach Home Assistant, a moment later.
    delivered(ha, pipeline)
    assert_accounted(
        pipeline.captured_total,
        addon_server.row_count(),
        len(ha.spool_events()),
        pipeline.dropped_total,
    )


def test_restart_with_a_backlog(addon_server: Any, start_hass: Callable[[], PlainHass]) -> None:
    """HA stopped with a spool and started again: the next instance delivers it all, once."""
    count = 3000
    addon_server.stop()
    first = start_hass()
    before = first.set_up_entry(
        addon_server.url, addon_server.token, **ONLY_SENSOR, **{CONF_BATCH_SIZE: 500}
    )
    first.run(set_states(first.hass, 0, count))
    first.stop()
    assert sorted(sensor_values(first.spool_events())) == list(range(count))

    addon_server.start()
    second = start_hass()
    after = second.set_up_entry(addon_server.url, addon_server.token)
    delivered(second, after)
    assert stored_values(addon_server) == list(range(count))
    assert_accounted(
        before.captured_total + after.captured_total,
        addon_server.row_count(),
        len(second.spool_events()),
        after.dropped_total,
    )


def test_spool_cap_drops_counted_across_a_restart(
    addon_server: Any, start_hass: Callable[[], PlainHass]
) -> None:
    """At the cap the oldest go: counted, shown, repaired, and still counted after a restart."""
    count = 3000
    addon_server.stop()
    first = start_hass()
    before = first.set_up_entry(
        addon_server.url,
        addon_server.token,
        **ONLY_SENSOR,
        **{CONF_BATCH_SIZE: 100, CONF_SPOOL_CAP_MB: 1},
    )

    async def fill() -> None:
        for start in range(0, count, 100):
            await set_states(first.hass, start, 100, padding="x" * 1000)
            await before.async_flush()

    first.run(fill())
    dropped = before.dropped_total
    assert dropped > 0
    issue = first.issue(ISSUE_SPOOL_FULL)
    assert issue is not None
    assert issue.translation_placeholders == {"dropped": str(dropped), "spool_cap_mb": "1"}
    assert first.state(DROPPED_SENSOR) == str(dropped)
    first.stop()
    spooled = first.spool_events()
    assert_accounted(before.captured_total, 0, len(spooled), dropped)
    # The oldest were dropped (not the batch on the wire then), the newest are kept.
    kept = sensor_values(spooled)
    assert kept == sorted(set(kept))
    assert kept[-100:] == list(range(count - 100, count))

    second = start_hass()  # the add-on is still down
    after = second.set_up_entry(addon_server.url, addon_server.token)
    assert after.dropped_total == dropped
    assert second.state(DROPPED_SENSOR) == str(dropped)
    assert second.issue(ISSUE_SPOOL_FULL) is not None

    addon_server.start()
    delivered(second, after)
    assert stored_values(addon_server) == kept
    assert_accounted(
        before.captured_total + after.captured_total,
        addon_server.row_count(),
        len(second.spool_events()),
        after.dropped_total,
    )
    # Everything that survived is delivered: the issue goes, the count stays.
    assert second.state(DROPPED_SENSOR) == str(dropped)
    assert second.issue(ISSUE_SPOOL_FULL) is None
