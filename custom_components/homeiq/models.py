"""Runtime data kept on the config entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .api import HomeIQClient
    from .coordinator import HomeIQCoordinator
    from .pipeline import Pipeline


@dataclass
class HomeIQData:
    """What one HomeIQ entry runs: the add-on client, the capture pipeline, the coordinator."""

    client: HomeIQClient
    pipeline: Pipeline
    coordinator: HomeIQCoordinator


type HomeIQConfigEntry = ConfigEntry[HomeIQData]
