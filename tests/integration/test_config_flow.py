"""Every config-flow step, error and abort, against the real add-on process."""

from __future__ import annotations

import json
from pathlib import Path
import socket
from typing import Any

from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.homeiq.const import (
    CONF_BATCH_SIZE,
    CONF_CAPTURE_MODE,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_DOMAINS,
    CONF_FLUSH_INTERVAL,
    CONF_SPOOL_CAP_MB,
    CONF_TOKEN,
    CONF_URL,
    CONF_WEATHER_ENTITY,
    DOMAIN,
)

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "homeiq"


def _dead_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _instance_id(hass: HomeAssistant, addon: Any) -> str:
    from homeassistant.helpers.aiohttp_client import async_get_clientsession

    from custom_components.homeiq.api import HomeIQClient

    client = HomeIQClient(async_get_clientsession(hass), addon.url, addon.token)
    return (await client.async_health()).instance_id


def _discovery(addon: Any, token: str | None = None) -> HassioServiceInfo:
    host, port = addon.url.removeprefix("http://").rsplit(":", 1)
    return HassioServiceInfo(
        config={"host": host, "port": int(port), "token": token or addon.token},
        name="HomeIQ",
        slug="homeiq",
        uuid="1234",
    )


async def test_user_step_creates_entry(hass: HomeAssistant, addon_server: Any) -> None:
    """URL and token are tested; the entry's unique id is the add-on's instance id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: addon_server.url + "/", CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "HomeIQ"
    assert result["data"] == {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}
    entry = result["result"]
    assert entry.unique_id == await _instance_id(hass, addon_server)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(("bad", "error"), [("url", "cannot_connect"), ("token", "invalid_auth")])
async def test_user_step_errors_then_recovers(
    hass: HomeAssistant, addon_server: Any, bad: str, error: str
) -> None:
    """A wrong URL or token keeps the form open with the error; fixing it creates the entry."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    wrong = {
        CONF_URL: _dead_url() if bad == "url" else addon_server.url,
        CONF_TOKEN: "wrong-token" if bad == "token" else addon_server.token,
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], wrong)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_user_step_one_entry_per_addon(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """The same add-on again aborts, and the stored URL/token follow what was typed."""
    unique_id = await _instance_id(hass, addon_server)
    entry = await make_entry("http://old:1", "old", setup=False, unique_id=unique_id)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data == {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}


async def test_hassio_discovery_confirm(hass: HomeAssistant, addon_server: Any) -> None:
    """Supervisor discovery: one confirm click, nothing to type."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(addon_server)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "HomeIQ"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}
    assert result["result"].unique_id == await _instance_id(hass, addon_server)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_hassio_discovery_updates_existing_entry(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Rediscovery of a configured add-on aborts and refreshes its URL and token."""
    unique_id = await _instance_id(hass, addon_server)
    entry = await make_entry("http://old:1", "old", setup=False, unique_id=unique_id)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(addon_server)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_TOKEN] == addon_server.token


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("url", "cannot_connect"), ("token", "invalid_auth"), ("payload", "cannot_connect")],
)
async def test_hassio_discovery_unusable(
    hass: HomeAssistant, addon_server: Any, bad: str, reason: str
) -> None:
    """A discovery whose add-on cannot be used aborts with the reason."""
    info = _discovery(addon_server, token="wrong" if bad == "token" else None)
    if bad == "url":
        host, port = _dead_url().removeprefix("http://").rsplit(":", 1)
        info.config.update(host=host, port=int(port))
    if bad == "payload":  # not what the contract's Discovery carries
        del info.config["token"]
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason


async def test_reauth(hass: HomeAssistant, addon_server: Any, make_entry: Any) -> None:
    """A refused token leads to reauth; a wrong token again is an error, the right one fixes it."""
    unique_id = await _instance_id(hass, addon_server)
    entry = await make_entry(addon_server.url, "stale", setup=False, unique_id=unique_id)
    result = await entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["url"] == addon_server.url

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == addon_server.token
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reauth_other_addon(hass: HomeAssistant, addon_server: Any, make_entry: Any) -> None:
    """A token for a different add-on instance is refused."""
    entry = await make_entry(addon_server.url, "stale", setup=False, unique_id="another-addon")
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_addon"


async def test_reconfigure(hass: HomeAssistant, addon_server: Any, make_entry: Any) -> None:
    """Reconfigure shows the current values, reports errors, then updates the entry."""
    unique_id = await _instance_id(hass, addon_server)
    dead = _dead_url()
    entry = await make_entry(dead, addon_server.token, unique_id=unique_id)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: dead, CONF_TOKEN: addon_server.token}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_URL] == addon_server.url
    await hass.async_block_till_done()
    # Reloaded once, by the entry's update listener: it now talks to the new address.
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.client.url == addon_server.url
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_other_addon(
    hass: HomeAssistant, addon_server: Any, make_entry: Any
) -> None:
    """Pointing an entry at a different add-on instance is refused."""
    entry = await make_entry("http://old:1", "t", setup=False, unique_id="another-addon")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: addon_server.url, CONF_TOKEN: addon_server.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_addon"
    assert entry.data[CONF_URL] == "http://old:1"


async def test_options_flow(hass: HomeAssistant, addon_server: Any, make_entry: Any) -> None:
    """Options validate and reach the running pipeline without a reload."""
    entry: MockConfigEntry = await make_entry(addon_server.url, addon_server.token)
    pipeline = entry.runtime_data.pipeline
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    base = {
        CONF_CAPTURE_MODE: "event_types",
        CONF_BATCH_SIZE: 250.0,
        CONF_FLUSH_INTERVAL: 2.0,
        CONF_SPOOL_CAP_MB: 10.0,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], base)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_EVENT_TYPES: "event_types_required"}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {**base, CONF_EVENT_TYPES: [" call_service ", ""], CONF_EXCLUDE_DOMAINS: ["sun"]},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_EVENT_TYPES] == ["call_service"]
    assert entry.options[CONF_EXCLUDE_DOMAINS] == ["sun"]
    assert entry.options[CONF_BATCH_SIZE] == 250
    assert entry.options[CONF_WEATHER_ENTITY] is None
    await hass.async_block_till_done()
    assert entry.runtime_data.pipeline is pipeline  # applied live, not reloaded
    assert pipeline.batch_size == 250
    assert pipeline.flush_interval == 2
    assert pipeline.spool_cap_bytes == 10 * 1024 * 1024
    assert pipeline.capture.filter.mode == "event_types"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_form_fields(hass: HomeAssistant, addon_server: Any, make_entry: Any) -> None:
    """Each field has the helper text HA's frontend looks up; no empty weather picker."""
    strings = json.loads((COMPONENT / "strings.json").read_text())["options"]["step"]["init"]
    entry: MockConfigEntry = await make_entry(addon_server.url, addon_server.token)

    async def form_fields() -> dict[str, Any]:
        result = await hass.config_entries.options.async_init(entry.entry_id)
        hass.config_entries.options.async_abort(result["flow_id"])
        return {str(key): key for key in result["data_schema"].schema}

    # No weather entity in this Home Assistant: the picker would only say so.
    fields = await form_fields()
    assert CONF_WEATHER_ENTITY not in fields
    hass.states.async_set("weather.home", "sunny")
    fields = await form_fields()
    assert CONF_WEATHER_ENTITY in fields
    # Nothing is suggested for an unset weather entity (None would read as a value).
    assert "suggested_value" not in (fields[CONF_WEATHER_ENTITY].description or {})

    # HA's frontend reads options.step.<step_id>.data_description.<field> (as markdown).
    assert set(fields) == set(strings["data"])
    assert set(fields) == set(strings["data_description"])
    for field, text in strings["data_description"].items():
        assert text.strip() == text
        assert " ." not in text, field
        if "*" in text:  # a glob, which markdown would turn into emphasis
            assert "`" in text, field
    assert await hass.config_entries.async_unload(entry.entry_id)
