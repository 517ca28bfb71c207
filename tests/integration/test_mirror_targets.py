"""The add-on's mirror targets in Home Assistant: a sensor per target, repair issues.

The add-on runs as a real process configured with mirror targets (tests/mirror/addon.py),
writing to a real victoria-metrics, behind a real vmauth where a token matters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.sensor import ATTR_OPTIONS, ATTR_STATE_CLASS
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_FRIENDLY_NAME,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.homeiq.const import (
    CAPTURE_EVENT_TYPES,
    CONF_CAPTURE_MODE,
    CONF_EVENT_TYPES,
    DOMAIN,
)
from tests.mirror.addon import T0, MirroringAddon, mirroring_addon, sensor_stream, vm_target
from tests.mirror.engines import VictoriaMetrics, VmAuth, refusing_port, running, wait_until

# pytest's default (signal) timeout raises in whatever runs on the main thread; while
# Home Assistant's loop runs a callback or another task, asyncio takes that exception
# for the callback's and the test waits on (this file hung once so). The thread method
# prints every thread's stack and ends the run instead.
pytestmark = pytest.mark.timeout(300, method="thread")

# vmauth's configured token, and one it refuses; made-up values.
TARGET_TOKEN = "mirror-target-token"
WRONG_TOKEN = "not-the-target-token"
# Only the tests' own event type: Home Assistant's events stay out of the add-on.
QUIET = {CONF_CAPTURE_MODE: CAPTURE_EVENT_TYPES, CONF_EVENT_TYPES: ["homeiq_test"]}
LAG = "sensor.homeiq_mirror_vm_lag"
STATUS = "sensor.homeiq_mirror_vm_status"
WRITTEN = "sensor.homeiq_mirror_vm_points_written"
REFUSED = "sensor.homeiq_mirror_vm_points_refused"

type MakeEntry = Callable[..., Awaitable[MockConfigEntry]]


async def _within[T](what: str, awaitable: Awaitable[T], seconds: float = 60) -> T:
    """What ``awaitable`` gives; the test fails saying what it waited for when that
    takes longer than ``seconds`` (Home Assistant's async_block_till_done has no end)."""
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            raise
        pytest.fail(f"gave up after {seconds:g} s waiting for {what}")


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path / "vm")
    with running(server):
        yield server


@pytest.fixture
def guarded(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[VmAuth]:
    """vmauth in front of ``victoria``, taking the bearer token ``TARGET_TOKEN``."""
    proxy = VmAuth(tmp_path / "vmauth", victoria.url, TARGET_TOKEN)
    with running(proxy):
        yield proxy


@pytest.fixture
def nowhere() -> Iterator[int]:
    """A port nothing answers on for the whole test."""
    with refusing_port() as port:
        yield port


def recent_events(count: int) -> list[dict[str, Any]]:
    return sensor_stream(count, start=datetime.now(UTC) - timedelta(minutes=30), entities=3)


async def _refresh(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await _within("the coordinator's refresh", entry.runtime_data.coordinator.async_refresh())
    await _within("Home Assistant's tasks after the refresh", hass.async_block_till_done())


async def _entry(make_entry: MakeEntry, addon: MirroringAddon, **options: Any) -> MockConfigEntry:
    return await _within(
        "the entry's setup", make_entry(addon.url, addon.token, **QUIET, **options)
    )


async def _restart(hass: HomeAssistant, addon: MirroringAddon, **options: Any) -> None:
    """The add-on started again with other options, as the Supervisor does on a change."""
    await hass.async_add_executor_job(addon.stop)
    addon.configure(**options)
    await hass.async_add_executor_job(addon.start)


async def _wait_status(hass: HomeAssistant, addon: MirroringAddon, name: str, status: str) -> None:
    def reached() -> bool:
        return bool(addon.targets()[name]["status"] == status)

    await hass.async_add_executor_job(wait_until, reached, 30, f"{name} {status}")


def _mirror_issues(hass: HomeAssistant) -> dict[str, ir.IssueEntry]:
    return {
        issue_id: issue
        for (domain, issue_id), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue_id.startswith("mirror_") and issue.active
    }


async def test_a_sensor_per_target_follows_the_add_ons_targets(
    hass: HomeAssistant,
    tmp_path: Path,
    victoria: VictoriaMetrics,
    make_entry: MakeEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """A target's lag, status and points appear with it, go unavailable while the add-on
    is down, and are removed once the add-on answers without the target."""
    events = recent_events(30)
    with mirroring_addon(
        tmp_path / "data", mirror_targets=[vm_target("vm", victoria.url)]
    ) as addon:
        await hass.async_add_executor_job(addon.ingest, events)
        await hass.async_add_executor_job(addon.wait_mirrored, "vm")
        entry = await _entry(make_entry, addon)
        await _refresh(hass, entry)

        lag = hass.states.get(LAG)
        assert lag is not None
        assert float(lag.state) == 0
        assert lag.attributes[ATTR_FRIENDLY_NAME] == "HomeIQ Mirror vm lag"
        assert lag.attributes[ATTR_DEVICE_CLASS] == "duration"
        assert lag.attributes[ATTR_UNIT_OF_MEASUREMENT] == "s"
        assert lag.attributes[ATTR_STATE_CLASS] == "measurement"
        assert lag.attributes["lag_events"] == 0
        status = hass.states.get(STATUS)
        assert status is not None
        assert status.state == "ok"
        assert status.attributes[ATTR_OPTIONS] == [
            "ok", "backfilling", "auth_failed", "unreachable", "disabled"
        ]  # fmt: skip
        assert status.attributes["last_error"] is None
        last_success = datetime.fromisoformat(status.attributes["last_success"])
        assert datetime.now(UTC) - last_success < timedelta(minutes=5)
        written = hass.states.get(WRITTEN)
        assert written is not None
        assert written.state == str(len(events))
        assert written.attributes[ATTR_UNIT_OF_MEASUREMENT] == "points"
        assert written.attributes[ATTR_STATE_CLASS] == "total_increasing"
        refused = hass.states.get(REFUSED)
        assert refused is not None
        assert refused.state == "0"
        category = {e: entity_registry.async_get(e).entity_category  # type: ignore[union-attr]
                    for e in (LAG, STATUS, WRITTEN, REFUSED)}  # fmt: skip
        diagnostic = EntityCategory.DIAGNOSTIC
        assert category == {LAG: None, STATUS: diagnostic, WRITTEN: diagnostic, REFUSED: diagnostic}
        # Its figures follow the add-on: more events, more points.
        await hass.async_add_executor_job(addon.ingest, recent_events(20))
        await hass.async_add_executor_job(addon.wait_mirrored, "vm")
        await _refresh(hass, entry)
        assert hass.states.get(WRITTEN).state == str(len(events) + 20)  # type: ignore[union-attr]

        # The add-on down: the target may still be there; its sensors wait, unavailable.
        await hass.async_add_executor_job(addon.stop)
        await _refresh(hass, entry)
        assert hass.states.get(LAG).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
        assert entity_registry.async_get(LAG) is not None

        # Back without the target: its sensors are gone, not left behind unavailable.
        addon.configure(mirror_targets=[])
        await hass.async_add_executor_job(addon.start)
        await _refresh(hass, entry)
        for entity_id in (LAG, STATUS, WRITTEN, REFUSED):
            assert entity_registry.async_get(entity_id) is None, entity_id
            assert hass.states.get(entity_id) is None, entity_id

        # And with it again (renamed): the sensors come back under the new name.
        await _restart(hass, addon, mirror_targets=[vm_target("grafana", victoria.url)])
        await hass.async_add_executor_job(addon.wait_mirrored, "grafana")
        await _refresh(hass, entry)
        again = hass.states.get("sensor.homeiq_mirror_grafana_points_written")
        assert again is not None
        assert again.state == str(len(events) + 20)
        assert again.attributes[ATTR_FRIENDLY_NAME] == "HomeIQ Mirror grafana points written"

        # A reload finds the target at once and keeps its entities.
        assert await _within("the reload", hass.config_entries.async_reload(entry.entry_id))
        await _within("Home Assistant's tasks after the reload", hass.async_block_till_done())
        await _refresh(hass, entry)
        assert hass.states.get("sensor.homeiq_mirror_grafana_lag").state == "0.0"  # type: ignore[union-attr]


async def test_a_refused_token_raises_a_repair_issue_until_it_is_corrected(
    hass: HomeAssistant, tmp_path: Path, guarded: VmAuth, make_entry: MakeEntry
) -> None:
    events = recent_events(50)
    wrong = vm_target("vm", guarded.url, token=WRONG_TOKEN)
    with mirroring_addon(tmp_path / "data", mirror_targets=[wrong]) as addon:
        await hass.async_add_executor_job(addon.ingest, events)
        await _wait_status(hass, addon, "vm", "auth_failed")
        entry = await _entry(make_entry, addon)
        await _refresh(hass, entry)

        status = hass.states.get(STATUS)
        assert status is not None
        assert status.state == "auth_failed"
        assert "token" in status.attributes["last_error"]
        assert hass.states.get(LAG).attributes["lag_events"] == len(events)  # type: ignore[union-attr]
        issues = _mirror_issues(hass)
        assert list(issues) == [f"mirror_auth_failed_{entry.entry_id}_vm"]
        issue = issues[f"mirror_auth_failed_{entry.entry_id}_vm"]
        assert issue.severity == ir.IssueSeverity.ERROR
        assert issue.translation_key == "mirror_auth_failed"
        placeholders = issue.translation_placeholders or {}
        assert placeholders["target"] == "vm"
        assert "check the token" in placeholders["error"]
        assert WRONG_TOKEN not in str(placeholders)
        # What the owner reads: which target, and where to correct the token.
        translations = await async_get_translations(hass, "en", "issues", [DOMAIN])
        text = translations[f"component.{DOMAIN}.issues.mirror_auth_failed.description"]
        assert "Correct the token of this target" in text.format(**placeholders)

        await _restart(hass, addon, mirror_targets=[{**wrong, "token": TARGET_TOKEN}])
        await hass.async_add_executor_job(addon.wait_mirrored, "vm")
        await _refresh(hass, entry)
        assert _mirror_issues(hass) == {}
        assert hass.states.get(STATUS).state == "ok"  # type: ignore[union-attr]
        assert hass.states.get(WRITTEN).state == str(len(events))  # type: ignore[union-attr]


async def test_a_target_past_its_lag_bound_raises_a_repair_issue_until_it_catches_up(
    hass: HomeAssistant,
    tmp_path: Path,
    victoria: VictoriaMetrics,
    make_entry: MakeEntry,
    nowhere: int,
) -> None:
    """Retention stops waiting for a target more than mirror_max_lag_hours behind: its raw
    events may be deleted before it receives them, and Home Assistant says so."""
    # Events of a day long ago; the target's address refuses connections.
    events = sensor_stream(24, start=T0)
    down = vm_target("vm", f"http://127.0.0.1:{nowhere}")
    with mirroring_addon(tmp_path / "data", mirror_targets=[down], mirror_max_lag_hours=1) as addon:
        await hass.async_add_executor_job(addon.ingest, events)
        await _wait_status(hass, addon, "vm", "unreachable")
        entry = await _entry(make_entry, addon)
        await _refresh(hass, entry)

        issues = _mirror_issues(hass)
        issue_id = f"mirror_retention_skipped_{entry.entry_id}_vm"
        assert list(issues) == [issue_id]
        issue = issues[issue_id]
        assert issue.severity == ir.IssueSeverity.WARNING
        placeholders = issue.translation_placeholders or {}
        assert placeholders["target"] == "vm"
        assert placeholders["lag_events"] == str(len(events))
        hours = (datetime.now(UTC) - T0).total_seconds() / 3600
        assert abs(int(placeholders["lag"].removesuffix(" hours")) - hours) < 2
        assert str(nowhere) in placeholders["error"]
        translations = await async_get_translations(hass, "en", "issues", [DOMAIN])
        text = translations[f"component.{DOMAIN}.issues.mirror_retention_skipped.description"]
        assert "raise mirror_max_lag_hours" in text.format(**placeholders)

        # The target fixed: it receives everything, retention waits for it again.
        await _restart(
            hass, addon, mirror_targets=[vm_target("vm", victoria.url)], mirror_max_lag_hours=1
        )
        await hass.async_add_executor_job(addon.wait_mirrored, "vm")
        await _refresh(hass, entry)
        assert _mirror_issues(hass) == {}

        # A disabled target is not waited for, by choice: no issue.
        await _restart(
            hass,
            addon,
            mirror_targets=[{**down, "enabled": False}],
            mirror_max_lag_hours=1,
        )
        await hass.async_add_executor_job(addon.ingest, sensor_stream(5, start=T0))
        await _wait_status(hass, addon, "vm", "disabled")
        await _refresh(hass, entry)
        assert hass.states.get(STATUS).state == "disabled"  # type: ignore[union-attr]
        assert _mirror_issues(hass) == {}


async def test_diagnostics_show_the_targets_never_a_token(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
    guarded: VmAuth,
    make_entry: MakeEntry,
    snapshot: SnapshotAssertion,
) -> None:
    events = recent_events(12)
    targets = [
        vm_target("guarded", guarded.url, token=WRONG_TOKEN),
        vm_target("spare", guarded.url, token=TARGET_TOKEN, enabled=False),
    ]
    with mirroring_addon(tmp_path / "data", mirror_targets=targets) as addon:
        await hass.async_add_executor_job(addon.ingest, events)
        await _wait_status(hass, addon, "guarded", "auth_failed")
        entry = await _entry(make_entry, addon, unique_id="test-instance")
        await _refresh(hass, entry)
        diagnostics = await _within(
            "the diagnostics", get_diagnostics_for_config_entry(hass, hass_client, entry)
        )
    text = str(diagnostics)
    for secret in (addon.token, WRONG_TOKEN, TARGET_TOKEN, guarded.url):
        assert secret not in text
    assert [t["name"] for t in diagnostics["addon"]["health"]["mirror"]] == ["guarded", "spare"]
    mirror = _stable(diagnostics["addon"]["health"]["mirror"])
    assert _stable(diagnostics["addon"]["stats"]["mirror"]) == mirror
    assert mirror == snapshot


def _stable(value: Any, key: str | None = None) -> Any:
    """What changes from run to run (the age of the oldest event) keeps only its type."""
    if key in {"lag_seconds"} and value is not None:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        return {k: _stable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value
