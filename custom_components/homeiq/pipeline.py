"""Capture → enrich → spool → ship, and the counters the sensors show."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
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
    label_registry as lr,
)
from homeassistant.helpers.event import async_track_time_interval

from .api import HomeIQClient
from .batch import BatchBuilder, Ready, encode_chunks
from .capture import Capture, Captured
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
    INTEGRATION_VERSION,
    LOGGER,
    SHUTDOWN_FLUSH_TIMEOUT,
)
from .contract import FEATURE_BATCH_COLUMNS, FEATURE_BATCH_ENTITIES
from .enrich import Enricher, snapshot
from .models import PipelineCounters
from .shipper import Shipper
from .spool import Spool
from .spool_writer import SpoolWriter
from .wire import EntityWire, WireContext

# Buffered events that start a flush: keeps the buffer short between flush intervals.
CONVERT_CHUNK = 500
REGISTRY_EVENTS = (
    er.EVENT_ENTITY_REGISTRY_UPDATED,
    dr.EVENT_DEVICE_REGISTRY_UPDATED,
    ar.EVENT_AREA_REGISTRY_UPDATED,
    fr.EVENT_FLOOR_REGISTRY_UPDATED,
    lr.EVENT_LABEL_REGISTRY_UPDATED,
)


class Pipeline:
    """One per config entry."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, client: HomeIQClient) -> None:
        """Wire the parts; nothing listens until `async_start`."""
        self.hass = hass
        self.entry = entry
        self._client = client
        self.enricher = Enricher(hass)
        self.capture = Capture(hass, self.enricher.entity_info, self._on_full, CONVERT_CHUNK)
        # Serialized entity keys (wire.py); replaced whenever registries or options change.
        self._wire_entities: dict[str, EntityWire] = {}
        # Each entity's attributes as the encoder last saw them (wire.WireContext): never
        # replaced, the capture sends an entity's attributes only when they change.
        self._wire_attributes: dict[str, Mapping[str, Any]] = {}
        # A copy of it while the encoder thread works on a trip: a flush cancelled then
        # drops the trip's result, but the thread has moved the map past the events that
        # are serialized again (by the next flush, from this copy).
        self._wire_attributes_before: dict[str, Mapping[str, Any]] | None = None
        self.spool = Spool(hass, entry.entry_id)
        self.shipper = Shipper(hass, entry, client, self.spool)
        self.writer = SpoolWriter(hass, self.spool)
        self.source = {"instance_id": "", "integration_version": INTEGRATION_VERSION}
        self.builder = BatchBuilder(self.source)
        # The thread that serializes (batch.py): our own, not HA's executor, so a stuck
        # executor (a hanging disk) cannot hold the events' way to the spool's queue. None
        # once stopped: what a late flush still finds is serialized on the loop.
        self._encoder: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="homeiq_encoder"
        )
        self.batch_size = DEFAULT_BATCH_SIZE
        self.flush_interval = float(DEFAULT_FLUSH_INTERVAL)
        self._options: Mapping[str, Any] = {}
        self._flush_lock = asyncio.Lock()
        self._flush_scheduled = False
        # What a flush holds between its awaits lives here, not in its locals: a cancelled
        # flush (HA cancels background tasks before it fires homeassistant_stop) leaves it
        # for the next one. Events taken from the buffer; how many of them are serialized;
        # batches sealed and not yet queued for the disk.
        self._taken: list[Captured] = []
        self._serialized = 0
        self._sealed: list[Ready] = []
        self._last_flush = time.monotonic()
        self._rate_samples: deque[tuple[float, int]] = deque()
        self._unsubs: list[CALLBACK_TYPE] = []
        self._stopped = False

    # --- counters read by the coordinator and sensors -------------------------------
    @property
    def captured_total(self) -> int:
        """Events captured since start."""
        return self.capture.captured_total

    @property
    def dropped_total(self) -> int:
        """Events given up since the entry was added (kept across restarts): dropped at the
        spool cap, refused by the add-on, or not writable to the spool."""
        return self.spool.dropped_total

    @property
    def backlog_events(self) -> int:
        """Events spooled and not yet acknowledged."""
        return self.spool.backlog_events

    @property
    def serializing_events(self) -> int:
        """Events a flush took from the buffer and has not serialized yet."""
        return len(self._taken) - self._serialized

    @property
    def buffered_events(self) -> int:
        """Events captured and not yet spooled."""
        return (
            len(self.capture.buffer)
            + self.serializing_events
            + self.builder.count
            + sum(batch.events for batch in self._sealed)
            + self.writer.writing
        )

    @property
    def spool_cap_bytes(self) -> int:
        """The spool's size limit (the oldest events are dropped beyond it)."""
        return self.spool.cap_bytes

    @property
    def spool_bytes(self) -> int:
        """Bytes in the spool."""
        return self.spool.size_bytes

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
        """Whether the add-on answered the newest send (of those answered, the last to
        start: the two on the wire may be answered in either order)."""
        return self.shipper.connected

    @property
    def last_error(self) -> str | None:
        """The newest send's delivery problem (as `connected`), cleared by a success."""
        return self.shipper.last_error

    @property
    def events_per_minute(self) -> float:
        """Captured events over the last 60 s (sampled every second)."""
        samples = self._rate_samples
        if not samples:
            return 0.0
        return float(self.captured_total - samples[0][1])

    def counters(self) -> PipelineCounters:
        """A snapshot of the counters above, for the coordinator and diagnostics."""
        return PipelineCounters(
            captured_total=self.captured_total,
            dropped_total=self.dropped_total,
            backlog_events=self.backlog_events,
            spool_bytes=self.spool_bytes,
            spool_cap_bytes=self.spool_cap_bytes,
            last_delivery=self.last_delivery,
            delivery_latency_ms=self.delivery_latency_ms,
            events_per_minute=self.events_per_minute,
            connected=self.connected,
            last_error=self.last_error,
        )

    # --- life cycle ----------------------------------------------------------------
    async def async_start(self) -> None:
        """Listen at once; load the spool left by an earlier run and let the shipper send it."""
        self.source["instance_id"] = await instance_id.async_get(self.hass)
        self.apply_options(self.entry.options)
        await self.spool.async_load()
        for event_type in REGISTRY_EVENTS:
            self._unsubs.append(self.hass.bus.async_listen(event_type, self._registry_updated))
        self._unsubs.append(async_track_time_interval(self.hass, self._tick, timedelta(seconds=1)))
        self._unsubs.append(
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self._async_on_stop)
        )
        self._unsubs.append(
            self.hass.bus.async_listen(EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_on_final_write)
        )
        self.shipper.start()

    @callback
    def apply_options(self, options: Mapping[str, Any]) -> None:
        """Apply options live: filter, listeners, batching, spool cap, enrichment."""
        self._options = options
        self._wire_entities = {}  # kept attributes may differ
        self.capture.apply_options(options)
        self.batch_size = int(options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE))
        self.flush_interval = float(options.get(CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL))
        cap_mb = float(options.get(CONF_SPOOL_CAP_MB, DEFAULT_SPOOL_CAP_MB))
        self.spool.cap_bytes = int(cap_mb * 1024 * 1024)

    async def _async_on_stop(self, _event: Event[Any]) -> None:
        """HA stops: spool the buffer and what its cancelled flushes held, at once.

        Capture goes on until the final write: events fired while integrations stop,
        homeassistant_stop itself first, are kept too.
        """
        try:
            async with asyncio.timeout(SHUTDOWN_FLUSH_TIMEOUT):
                await self._async_flush_buffer(seal=True)
        except TimeoutError:
            pass  # the final write tries again, and counts what it cannot spool

    async def _async_on_final_write(self, _event: Event[Any]) -> None:
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
        # Called from inside an event's dispatch (final write), the capture listener still
        # gets that event after this yield: the flush below takes it.
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(SHUTDOWN_FLUSH_TIMEOUT):
                await self._async_flush_buffer(seal=True)
        except TimeoutError:
            self._give_up_unspooled()
        self._stop_encoder()
        await self.shipper.async_stop()
        await self.spool.async_save()

    def _stop_encoder(self) -> None:
        """End the encoder thread (idle by now: the final flush is done or given up, and a
        job in flight only serializes, in milliseconds)."""
        if self._encoder is not None:
            self._encoder.shutdown(wait=True)
            self._encoder = None

    def _give_up_unspooled(self) -> None:
        """Count what missed the shutdown bound as dropped (the disk hangs), and let it go.

        The job on its way to the disk is left to finish: its thread writes it anyway.
        """
        lost = self.buffered_events - self.writer.on_disk_soon
        if not lost:
            return
        self.capture.take()
        self._taken, self._serialized, self._sealed = [], 0, []
        if self.builder.count:
            self.builder.seal()
        self.writer.discard_queued()
        LOGGER.error(
            "HomeIQ could not spool %s events within %ss: counted as dropped",
            lost,
            SHUTDOWN_FLUSH_TIMEOUT,
        )
        self.spool.count_dropped(lost)

    async def async_flush(self) -> None:
        """Spool what is buffered and try to ship now, cutting any back-off short."""
        await self._async_flush_buffer(seal=True)
        self.shipper.retry_now()

    async def async_wait_delivered(self) -> None:
        """Flush, then wait until the add-on acknowledged everything (tests, benchmarks)."""
        await self.async_flush()
        await self.spool.async_wait_empty()

    # --- internals -----------------------------------------------------------------
    @callback
    def _on_full(self) -> None:
        # A flush scheduled but not started yet will take this buffer too.
        if not self._flush_scheduled:
            # Not eager: the flush must not start inside the bus listener's call.
            self._schedule_flush(seal=False, eager_start=False)

    @callback
    def _schedule_flush(self, seal: bool, eager_start: bool = True) -> None:
        self._flush_scheduled = True
        task = self.entry.async_create_background_task(
            self.hass,
            self._async_flush_buffer(seal=seal, wait=False),
            "homeiq flush",
            eager_start=eager_start,
        )
        task.add_done_callback(self._flush_done)

    @callback
    def _flush_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            # Cancelled before it started, it never cleared the flag: let the next one go.
            self._flush_scheduled = False

    @callback
    def _registry_updated(self, _event: Event[Any]) -> None:
        self.enricher.invalidate()
        self.capture.filter.invalidate()
        self._wire_entities = {}

    @callback
    def _tick(self, _now: datetime) -> None:
        now = time.monotonic()
        samples = self._rate_samples
        samples.append((now, self.captured_total))
        while samples and samples[0][0] < now - 60:
            samples.popleft()
        if self.buffered_events and now - self._last_flush >= self.flush_interval:
            self._schedule_flush(seal=True)

    async def _async_flush_buffer(self, seal: bool, wait: bool = True) -> None:
        """Serialize the buffer (with `seal`, spool even a partial batch).

        With `seal` and `wait`, everything is spooled when this returns (flush, stop).
        Cancelled at any await, it leaves what it took in `_taken`/`_sealed` and in the
        writer's queue: the next flush carries on from there, in capture order.
        """
        async with self._flush_lock:
            self._flush_scheduled = False
            if seal:
                self._last_flush = time.monotonic()
            await self._async_serialize_taken()
            if seal and self.builder.count:
                self._sealed.append(self.builder.seal())
            ready, self._sealed = self._sealed, []
            if seal and wait:
                # Also waits for batches queued by earlier flushes: all spooled on return.
                await self.writer.async_write(ready)
            elif ready:
                # Written in its own task: the next buffer is serialized meanwhile (waiting
                # for the disk here held capture for a quarter second under load).
                self.writer.submit(ready)

    async def _async_serialize_taken(self) -> None:
        """Take the buffer and serialize it into the builder, in the encoder thread.

        Its own function so that no local keeps the captured events alive over the disk
        write.
        Cancelled while the thread works, it leaves the events taken: the next flush
        serializes them again (the thread's result is dropped, and the per-entity caches
        it moved along are set back to where that trip began).
        """
        if self._wire_attributes_before is not None:  # a trip's result was dropped
            self._wire_attributes, self._wire_attributes_before = (
                self._wire_attributes_before,
                None,
            )
            self._wire_entities = {}  # built from attributes of events after these
        if self._serialized < len(self._taken):
            self._taken += self.capture.take()  # behind what a cancelled flush left
        else:
            self._taken, self._serialized = self.capture.take(), 0
        events = self._taken
        total = len(events)
        if self._serialized == total:
            return
        await self.enricher.async_prepare_users(
            {captured[5] for captured in events[self._serialized :]}  # context user ids
        )
        batch_size = self.batch_size
        while self._serialized < total:
            chunks = self.builder.plan(
                self._serialized,
                total,
                batch_size,
                tables=FEATURE_BATCH_ENTITIES in self._client.addon_features,
                columns=FEATURE_BATCH_COLUMNS in self._client.addon_features,
            )
            ctx = self._wire_context()  # after each trip: the caches may have been replaced
            if self._encoder is None:  # stopped: a late flush
                encoded = encode_chunks(events, chunks, ctx)
            else:
                self._wire_attributes_before = dict(self._wire_attributes)
                encoded = await self.hass.loop.run_in_executor(
                    self._encoder, encode_chunks, events, chunks, ctx
                )
                self._wire_attributes_before = None
            # No await from here on: each chunk is either in the builder or still taken.
            done = chunks[: len(encoded.parts)]
            self._sealed += self.builder.add(done, encoded.parts, batch_size)
            if done:
                self._serialized = done[-1][1]
            for entity_id in encoded.unknown:
                self.enricher.entity_info(entity_id)  # cached: the next trip finds them
        self._taken, self._serialized = [], 0

    def _wire_context(self) -> WireContext:
        """What the encoder thread reads, prepared on the loop."""
        options = self._options
        return WireContext(
            infos=self.enricher.entities,
            entities=self._wire_entities,
            attributes=self._wire_attributes,
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
