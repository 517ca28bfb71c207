"""Capture → enrich → spool → ship, and the counters the sensors show."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    instance_id,
    issue_registry as ir,
    label_registry as lr,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import STORAGE_DIR

from .api import HomeIQClient
from .batch import RECORDS_PER_DUMP, BatchBuilder, Ready
from .capture import Capture
from .const import (
    CONF_BATCH_SIZE,
    CONF_DROP_ATTRIBUTES,
    CONF_ENRICH_PEOPLE,
    CONF_ENRICH_SUN,
    CONF_FLUSH_INTERVAL,
    CONF_KEEP_ATTRIBUTES,
    CONF_SPOOL_CAP_MB,
    CONF_WEATHER_ENTITY,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_SPOOL_CAP_MB,
    DOMAIN,
    INTEGRATION_VERSION,
    ISSUE_SPOOL_FULL,
    LOGGER,
    SHUTDOWN_FLUSH_TIMEOUT,
)
from .enrich import BatchContext, Enricher, snapshot
from .shipper import Shipper
from .spool import Spool, SpoolItem

# Buffered events that start a flush: keeps the buffer short between flush intervals.
CONVERT_CHUNK = 500
# Longest stretch of serializing on the loop before letting HA run (seconds).
LOOP_SLICE = 0.01
REGISTRY_EVENTS = (
    er.EVENT_ENTITY_REGISTRY_UPDATED,
    dr.EVENT_DEVICE_REGISTRY_UPDATED,
    ar.EVENT_AREA_REGISTRY_UPDATED,
    fr.EVENT_FLOOR_REGISTRY_UPDATED,
    lr.EVENT_LABEL_REGISTRY_UPDATED,
)


def spool_dir(hass: HomeAssistant, entry_id: str) -> Path:
    """Where an entry's spool lives, under the HA config dir."""
    return Path(hass.config.path(STORAGE_DIR, "homeiq_spool", entry_id))


class Pipeline:
    """One per config entry."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: HomeIQClient) -> None:
        """Wire the parts; nothing listens until `async_start`."""
        self.hass = hass
        self.entry = entry
        self.enricher = Enricher(hass)
        self.capture = Capture(hass, self.enricher.entity_info, self._on_buffer)
        self.spool = Spool(spool_dir(hass, entry.entry_id))
        self.shipper = Shipper(hass, entry, client, self.spool, self._changed)
        self.source = {"instance_id": "", "integration_version": INTEGRATION_VERSION}
        self.builder = BatchBuilder(self.source)
        self.batch_size = DEFAULT_BATCH_SIZE
        self.flush_interval = float(DEFAULT_FLUSH_INTERVAL)
        self.spool_cap_bytes = DEFAULT_SPOOL_CAP_MB * 1024 * 1024
        self.spool_dropped = 0
        self._options: Mapping[str, Any] = {}
        self._flush_lock = asyncio.Lock()
        self._flush_scheduled = False
        self._converting = 0  # events handed to the worker thread, not yet spooled
        self._last_flush = time.monotonic()
        self._rate_samples: deque[tuple[float, int]] = deque()
        self._listeners: list[Callable[[], None]] = []
        self._dirty = False
        self._unsubs: list[CALLBACK_TYPE] = []
        self._stopped = False

    # --- counters read by the coordinator and sensors -------------------------------
    @property
    def captured_total(self) -> int:
        """Events captured since start."""
        return self.capture.captured_total

    @property
    def dropped_total(self) -> int:
        """Events given up: dropped at the spool cap or refused by the add-on."""
        return self.spool_dropped + self.shipper.rejected_events

    @property
    def backlog_events(self) -> int:
        """Events spooled and not yet acknowledged."""
        return self.shipper.backlog_events

    @property
    def buffered_events(self) -> int:
        """Events captured and not yet spooled."""
        return len(self.capture.buffer) + self._converting + self.builder.count

    @property
    def spool_bytes(self) -> int:
        """Bytes in the spool."""
        return self.shipper.spool_bytes

    @property
    def last_delivery(self) -> datetime | None:
        """When the add-on last acknowledged a batch."""
        return self.shipper.last_delivery

    @property
    def delivery_latency_ms(self) -> float | None:
        """Spooled-to-acknowledged time of the last batch."""
        return self.shipper.delivery_latency_ms

    @property
    def connected(self) -> bool:
        """Whether the add-on answered the last request."""
        return self.shipper.connected

    @property
    def last_error(self) -> str | None:
        """The last delivery problem, cleared by the next success."""
        return self.shipper.last_error

    @property
    def events_per_minute(self) -> float:
        """Captured events over the last 60 s (sampled every second)."""
        samples = self._rate_samples
        if not samples:
            return 0.0
        return float(self.captured_total - samples[0][1])

    @callback
    def async_add_listener(self, update: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `update` (at most once a second) when counters change."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    # --- life cycle ----------------------------------------------------------------
    async def async_start(self) -> None:
        """Listen at once; load the spool left by an earlier run and let the shipper send it."""
        self.source["instance_id"] = await instance_id.async_get(self.hass)
        self.apply_options(self.entry.options)
        items = await self.hass.async_add_executor_job(self.spool.load)
        self.shipper.add(items)
        for event_type in REGISTRY_EVENTS:
            self._unsubs.append(self.hass.bus.async_listen(event_type, self._registry_updated))
        self._unsubs.append(async_track_time_interval(self.hass, self._tick, timedelta(seconds=1)))
        self._unsubs.append(
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self._async_on_stop)
        )
        self._unsubs.append(
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_on_stop)
        )
        self.shipper.start()

    @callback
    def apply_options(self, options: Mapping[str, Any]) -> None:
        """Apply options live: filter, listeners, batching, spool cap, enrichment."""
        self._options = options
        self.capture.apply_options(options)
        self.batch_size = int(options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE))
        self.flush_interval = float(options.get(CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL))
        cap_mb = float(options.get(CONF_SPOOL_CAP_MB, DEFAULT_SPOOL_CAP_MB))
        self.spool_cap_bytes = int(cap_mb * 1024 * 1024)

    async def _async_on_stop(self, _event: Event[Any]) -> None:
        await self.async_stop()

    async def async_stop(self) -> None:
        """Stop capture; the in-memory buffer reaches the spool within a bound."""
        if self._stopped:
            return
        self._stopped = True
        self.capture.stop()
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        try:
            async with asyncio.timeout(SHUTDOWN_FLUSH_TIMEOUT):
                await self._async_flush_buffer(seal=True)
        except TimeoutError:
            LOGGER.warning(
                "HomeIQ could not spool %s events within %ss",
                self.buffered_events,
                SHUTDOWN_FLUSH_TIMEOUT,
            )
        await self.shipper.async_stop()

    async def async_flush(self) -> None:
        """Spool what is buffered and try to ship now, cutting any back-off short."""
        await self._async_flush_buffer(seal=True)
        self.shipper.retry_now()

    async def async_wait_delivered(self) -> None:
        """Flush, then wait until the add-on acknowledged everything (tests, benchmarks)."""
        await self.async_flush()
        await self.shipper.async_wait_idle()

    # --- internals -----------------------------------------------------------------
    @callback
    def _on_buffer(self, length: int) -> None:
        if length >= CONVERT_CHUNK and not self._flush_scheduled:
            self._flush_scheduled = True
            # Not eager: the flush must not start inside the bus listener's call.
            self.entry.async_create_background_task(
                self.hass, self._async_flush_buffer(seal=False), "homeiq flush", eager_start=False
            )

    @callback
    def _registry_updated(self, _event: Event[Any]) -> None:
        self.enricher.invalidate()
        self.capture.filter.invalidate()

    @callback
    def _tick(self, _now: datetime) -> None:
        now = time.monotonic()
        samples = self._rate_samples
        samples.append((now, self.captured_total))
        while samples and samples[0][0] < now - 60:
            samples.popleft()
        if self.buffered_events and now - self._last_flush >= self.flush_interval:
            self._flush_scheduled = True
            self.entry.async_create_background_task(
                self.hass, self._async_flush_buffer(seal=True), "homeiq flush"
            )
        if self._dirty or self.capture.buffer:
            self._dirty = False
            for update in list(self._listeners):
                update()

    @callback
    def _changed(self) -> None:
        self._dirty = True

    async def _async_flush_buffer(self, seal: bool) -> None:
        """Serialize the buffer (and with `seal`, spool even a partial batch)."""
        async with self._flush_lock:
            self._flush_scheduled = False
            if seal:
                self._last_flush = time.monotonic()
            events = self.capture.take()
            self._converting = len(events)
            ready: list[Ready] = []
            if len(events):
                await self.enricher.async_prepare(events)
                options = self._options
                ctx = BatchContext(
                    entities=self.enricher.entities,
                    attributes=events.attributes,
                    users=self.enricher.users,
                    causes=self.capture.context_causes,
                    snapshot=snapshot(
                        self.hass,
                        options.get(CONF_WEATHER_ENTITY),
                        bool(options.get(CONF_ENRICH_SUN)),
                        bool(options.get(CONF_ENRICH_PEOPLE)),
                    ),
                    keep_attributes=frozenset(options.get(CONF_KEEP_ATTRIBUTES) or ()),
                    drop_attributes=frozenset(options.get(CONF_DROP_ATTRIBUTES) or ()),
                )
                total = len(events)
                slice_end = time.monotonic() + LOOP_SLICE
                for start in range(0, total, RECORDS_PER_DUMP):
                    stop = min(start + RECORDS_PER_DUMP, total)
                    self._converting = total - stop
                    ready += self.builder.add(events, start, stop, ctx, self.batch_size)
                    if stop < total and time.monotonic() > slice_end:
                        await asyncio.sleep(0)  # let HA run, then carry on
                        slice_end = time.monotonic() + LOOP_SLICE
                self._converting = 0
            if seal and self.builder.count:
                ready.append(self.builder.seal())
            if not ready:
                return
            self._converting = sum(batch.events for batch in ready)  # being written
            try:
                items = await self.hass.async_add_executor_job(self._write, ready)
            finally:
                self._converting = 0
            self.shipper.add(items)
            await self._async_enforce_cap()
            self._dirty = True

    def _write(self, ready: list[Ready]) -> list[SpoolItem]:
        return [self.spool.write(*batch) for batch in ready]

    async def _async_enforce_cap(self) -> None:
        dropped: list[SpoolItem] = []
        while self.shipper.spool_bytes > self.spool_cap_bytes:
            item = self.shipper.take_oldest()
            if item is None:
                break
            dropped.append(item)
        if not dropped:
            return
        count = sum(item.events for item in dropped)
        self.spool_dropped += count
        LOGGER.warning("HomeIQ spool is full: dropped the %s oldest events", count)
        await self.hass.async_add_executor_job(self.spool.remove, dropped)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            ISSUE_SPOOL_FULL,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_SPOOL_FULL,
            translation_placeholders={
                "dropped": str(self.dropped_total),
                "spool_cap_mb": str(round(self.spool_cap_bytes / 1024 / 1024)),
            },
        )
