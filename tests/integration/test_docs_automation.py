"""The documentation's status automation, run as written in the real hass core."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import re
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_CALL_SERVICE
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integration.md"


def _status_automation() -> Any:
    """The YAML block of docs/integration.md that holds the "HomeIQ status" automation."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    block = next(b for b in blocks if "alias: HomeIQ status" in b)
    return parse_yaml(block)


async def test_status_automation_fires_when_the_addon_goes_down(
    hass: HomeAssistant,
    homeiq_entry: MockConfigEntry,
    addon_server: Any,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The example triggers on the commonest failure: the add-on stopped."""
    assert await async_setup_component(hass, "persistent_notification", {})
    assert await async_setup_component(hass, "automation", _status_automation())
    await hass.async_block_till_done()
    calls = async_capture_events(hass, EVENT_CALL_SERVICE)
    assert hass.states.get("sensor.homeiq_status").state == "ok"

    await hass.async_add_executor_job(addon_server.stop)
    await homeiq_entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("sensor.homeiq_status").state == "unreachable"
    assert not [c for c in calls if c.data["domain"] == "persistent_notification"]

    freezer.tick(timedelta(minutes=6))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    notes = [c for c in calls if c.data["domain"] == "persistent_notification"]
    assert len(notes) == 1
    message = notes[0].data["service_data"]["message"]
    assert message.startswith("HomeIQ is unreachable:")
    assert "cannot reach the HomeIQ app" in message
