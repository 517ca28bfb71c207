"""The dropped-events count: kept on disk, so a restart never hides what was given up."""

from __future__ import annotations

from typing import TypedDict

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN

STORAGE_VERSION = 1
# Drops come in bursts (one per spool write while the cap is hit): one file write per burst.
SAVE_DELAY = 1.0


class _Saved(TypedDict):
    dropped: int


class DroppedEvents:
    """Events given up for good, since the config entry was added.

    Dropped at the spool cap or refused by the add-on; the sensor and the repair issue
    show the total. Saved in `.storage` a second after it changes (Home Assistant writes
    what is pending before it stops) and when the pipeline stops.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Nothing is read until `async_load`."""
        self._store: Store[_Saved] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.dropped")
        self.total = 0
        self._unsaved = False

    async def async_load(self) -> None:
        """Start from what earlier runs counted."""
        saved = await self._store.async_load()
        self.total = saved["dropped"] if saved else 0

    def add(self, count: int) -> None:
        """Count `count` more events given up."""
        self.total += count
        self._unsaved = True
        self._store.async_delay_save(self._saved, SAVE_DELAY)

    async def async_save(self) -> None:
        """Write a changed count now (the pipeline is stopping)."""
        if self._unsaved:
            self._unsaved = False
            await self._store.async_save(self._saved())

    async def async_remove(self) -> None:
        """Forget the count (the config entry was deleted)."""
        await self._store.async_remove()

    def _saved(self) -> _Saved:
        return {"dropped": self.total}
