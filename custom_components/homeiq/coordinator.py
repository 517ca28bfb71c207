"""One coordinator for everything the HomeIQ entities show.

It polls the add-on's health and stats and merges in the capture pipeline's local
counters. An unreachable add-on is a normal state here, not a failed update: the
pipeline keeps capturing and spooling, so its counters (backlog above all) must keep
updating while the add-on-fed entities go unavailable (and the status reads unreachable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .api import HomeIQAuthError, HomeIQClient, HomeIQError, HomeIQIncompatibleError
from .const import DOMAIN, LOGGER
from .contract import API_VERSION, Health, Stats
from .issues import IssueTracker
from .models import AddonAnswers, HomeIQState, IncompatibleAddon
from .pipeline import Pipeline

# Stats are aggregated by the add-on; every 30 s keeps the sensors fresh without load.
SCAN_INTERVAL = timedelta(seconds=30)
# The window the add-on's alerts and rates are computed over.
STATS_PERIOD = "1h"


@dataclass
class HomeIQData:
    """What one HomeIQ entry runs: the add-on client, the capture pipeline, the coordinator."""

    client: HomeIQClient
    pipeline: Pipeline
    coordinator: HomeIQCoordinator


type HomeIQConfigEntry = ConfigEntry[HomeIQData]


class HomeIQCoordinator(DataUpdateCoordinator[HomeIQState]):
    """Poll the add-on, merge the pipeline counters, keep repair issues in step."""

    config_entry: HomeIQConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HomeIQConfigEntry,
        client: HomeIQClient,
        pipeline: Pipeline,
    ) -> None:
        """Start with placeholder data so setup never waits on the add-on."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=DOMAIN,
            update_interval=SCAN_INTERVAL,
        )
        self.client = client
        self.pipeline = pipeline
        self.data = HomeIQState(pipeline=pipeline.counters())
        # None until the first answer: the first failure is logged, a first success is not.
        self._reachable: bool | None = None
        self._unreachable_since: datetime | None = None
        self._device_version: str | None = None
        self._issues = IssueTracker(hass, client.url, entry.entry_id)

    @callback
    def async_start(self) -> None:
        """Fetch the first data in the background; entities show placeholders until then."""
        self.config_entry.async_create_background_task(
            self.hass, self.async_refresh(), f"{DOMAIN} first refresh"
        )

    async def _async_update_data(self) -> HomeIQState:
        """Ask the add-on for health and stats; an unreachable add-on is data, not failure."""
        try:
            health = await self.client.async_health()
            stats = await self.client.async_stats(STATS_PERIOD)
        except HomeIQAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="auth_failed"
            ) from err
        except HomeIQIncompatibleError as err:
            self._answered()
            incompatible = IncompatibleAddon(err.version, err.api_version)
            state = HomeIQState(pipeline=self.pipeline.counters(), incompatible=incompatible)
        except HomeIQError as err:
            state = self._unreachable(err)
        else:
            state = self._reached(health, stats)
        self._issues.update(state)
        return state

    def _unreachable(self, err: HomeIQError) -> HomeIQState:
        if self._reachable is not False:
            LOGGER.warning("HomeIQ add-on at %s is unreachable: %s", self.client.url, err)
            self._reachable = False
            self._unreachable_since = dt_util.utcnow()
        return HomeIQState(
            pipeline=self.pipeline.counters(), unreachable_since=self._unreachable_since
        )

    def _reached(self, health: Health, stats: Stats) -> HomeIQState:
        self._answered()
        self._update_device_version(health.version)
        incompatible = None
        if health.api_version != API_VERSION:
            incompatible = IncompatibleAddon(health.version, health.api_version)
        return HomeIQState(
            pipeline=self.pipeline.counters(),
            addon=AddonAnswers(health=health, stats=stats),
            incompatible=incompatible,
        )

    def _answered(self) -> None:
        if self._reachable is False:
            LOGGER.info("HomeIQ add-on at %s is reachable again", self.client.url)
        self._reachable = True
        self._unreachable_since = None

    def _update_device_version(self, version: str) -> None:
        """Show the add-on's version on the service device once it is known."""
        if version == self._device_version:
            return
        registry = dr.async_get(self.hass)
        entry_id = self.config_entry.entry_id
        # Among the entry's own devices: looking a device up by identifier alone is
        # deprecated from Home Assistant 2026.9, and this works on every supported release.
        devices = dr.async_entries_for_config_entry(registry, entry_id)
        device = next((d for d in devices if (DOMAIN, entry_id) in d.identifiers), None)
        if device is not None:
            registry.async_update_device(device.id, sw_version=version)
            self._device_version = version
