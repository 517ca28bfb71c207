"""Config flow: Supervisor discovery, manual URL + token, reauth, reconfigure, options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    AreaSelector,
    AreaSelectorConfig,
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    LabelSelector,
    LabelSelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
import msgspec
import voluptuous as vol

from .api import HomeIQAuthError, HomeIQClient, HomeIQError
from .const import (
    CAPTURE_EVENT_TYPES,
    CAPTURE_MODES,
    CONF_BATCH_SIZE,
    CONF_CAPTURE_MODE,
    CONF_ENRICH_PEOPLE,
    CONF_ENRICH_SUN,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_LABELS,
    CONF_FLUSH_INTERVAL,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_LABELS,
    CONF_INCLUDE_STATE_REPORTED,
    CONF_SPOOL_CAP_MB,
    CONF_TOKEN,
    CONF_URL,
    CONF_WEATHER_ENTITY,
    DEFAULT_OPTIONS,
    DOMAIN,
    LIST_OPTIONS,
    LOGGER,
    MAX_BATCH_SIZE,
    MAX_FLUSH_INTERVAL,
    MAX_SPOOL_CAP_MB,
    MIN_BATCH_SIZE,
    MIN_FLUSH_INTERVAL,
    MIN_SPOOL_CAP_MB,
)
from .contract import DiscoveryConfig

TITLE = "HomeIQ"
TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))


async def _validate(hass: HomeAssistant, url: str, token: str) -> tuple[str | None, str]:
    """Return (error key or None, add-on instance id)."""
    client = HomeIQClient(async_get_clientsession(hass), url, token)
    try:
        health = await client.async_health()
    except HomeIQAuthError:
        return "invalid_auth", ""
    except HomeIQError:
        return "cannot_connect", ""
    return None, health.instance_id or url


class HomeIQConfigFlow(ConfigFlow, domain=DOMAIN):
    """One entry per add-on instance (unique id: the add-on's instance id)."""

    VERSION = 1

    def __init__(self) -> None:
        """Nothing discovered yet."""
        self._discovery: dict[str, str] = {}
        self._addon_name = "HomeIQ"

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: Any) -> HomeIQOptionsFlow:
        """Options are applied live by the running pipeline."""
        return HomeIQOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the add-on URL and token, and test them."""
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].rstrip("/")
            error, instance_id = await _validate(self.hass, url, user_input[CONF_TOKEN])
            if error is None:
                await self.async_set_unique_id(instance_id)
                data = {CONF_URL: url, CONF_TOKEN: user_input[CONF_TOKEN]}
                # The entry's update listener reloads it when this changes its data.
                self._abort_if_unique_id_configured(updates=data, reload_on_update=False)
                return self.async_create_entry(title=TITLE, data=data)
            errors["base"] = error
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_connection_schema(), user_input),
            errors=errors,
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The add-on announced itself through the Supervisor: confirm and done."""
        try:
            config = msgspec.convert(discovery_info.config, type=DiscoveryConfig)
        except msgspec.ValidationError as err:
            LOGGER.error("HomeIQ discovery from %s is not usable: %s", discovery_info.slug, err)
            return self.async_abort(reason="cannot_connect")
        url = f"http://{config.host}:{config.port}"
        error, instance_id = await _validate(self.hass, url, config.token)
        if error is not None:
            return self.async_abort(reason=error)
        await self.async_set_unique_id(instance_id)
        self._discovery = {CONF_URL: url, CONF_TOKEN: config.token}
        # A reinstalled add-on comes back with a new token: follow it (the entry's update
        # listener reloads it).
        self._abort_if_unique_id_configured(updates=self._discovery, reload_on_update=False)
        self._addon_name = discovery_info.name
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm the discovered add-on."""
        if user_input is not None:
            return self.async_create_entry(title=TITLE, data=self._discovery)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="hassio_confirm", description_placeholders={"addon": self._addon_name}
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The add-on refused the token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new token for the same add-on."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            error, instance_id = await _validate(
                self.hass, entry.data[CONF_URL], user_input[CONF_TOKEN]
            )
            if error is None:
                await self.async_set_unique_id(instance_id)
                self._abort_if_unique_id_mismatch(reason="wrong_addon")
                return self._update_and_abort(
                    entry, {CONF_TOKEN: user_input[CONF_TOKEN]}, "reauth_successful"
                )
            errors["base"] = error
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            description_placeholders={"url": entry.data[CONF_URL]},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the URL or token of the same add-on."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].rstrip("/")
            error, instance_id = await _validate(self.hass, url, user_input[CONF_TOKEN])
            if error is None:
                await self.async_set_unique_id(instance_id)
                self._abort_if_unique_id_mismatch(reason="wrong_addon")
                return self._update_and_abort(
                    entry,
                    {CONF_URL: url, CONF_TOKEN: user_input[CONF_TOKEN]},
                    "reconfigure_successful",
                )
            errors["base"] = error
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _connection_schema(), user_input or dict(entry.data)
            ),
            errors=errors,
        )

    def _update_and_abort(
        self, entry: ConfigEntry, data_updates: dict[str, str], reason: str
    ) -> ConfigFlowResult:
        """Store the new connection and finish; the entry's update listener owns the reload.

        Home Assistant's own reloading helpers would reload a second time beside the
        listener, which it reports from 2026.6 and refuses from 2026.12.
        """
        self.hass.config_entries.async_update_entry(entry, data={**entry.data, **data_updates})
        return self.async_abort(reason=reason)


def _connection_schema() -> vol.Schema:
    return vol.Schema(
        {vol.Required(CONF_URL): URL_SELECTOR, vol.Required(CONF_TOKEN): TOKEN_SELECTOR}
    )


def _number(low: int, high: int, unit: str = "") -> NumberSelector:
    config = NumberSelectorConfig(min=low, max=high, step=1, mode=NumberSelectorMode.BOX)
    if unit:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def _options_schema(weather_field: bool) -> vol.Schema:
    text_list = TextSelector(TextSelectorConfig(multiple=True))
    schema: dict[vol.Marker, Any] = {
        vol.Required(CONF_CAPTURE_MODE): SelectSelector(
            SelectSelectorConfig(
                options=CAPTURE_MODES,
                mode=SelectSelectorMode.LIST,
                translation_key=CONF_CAPTURE_MODE,
            )
        ),
        vol.Optional(CONF_INCLUDE_STATE_REPORTED): BooleanSelector(),
    }
    for key in LIST_OPTIONS:
        if key in (CONF_INCLUDE_AREAS, CONF_EXCLUDE_AREAS):
            selector: Any = AreaSelector(AreaSelectorConfig(multiple=True))
        elif key in (CONF_INCLUDE_LABELS, CONF_EXCLUDE_LABELS):
            selector = LabelSelector(LabelSelectorConfig(multiple=True))
        else:
            selector = text_list
        schema[vol.Optional(key)] = selector
    if weather_field:
        schema[vol.Optional(CONF_WEATHER_ENTITY)] = EntitySelector(
            EntitySelectorConfig(domain="weather")
        )
    schema.update(
        {
            vol.Optional(CONF_ENRICH_SUN): BooleanSelector(),
            vol.Optional(CONF_ENRICH_PEOPLE): BooleanSelector(),
            vol.Required(CONF_BATCH_SIZE): _number(MIN_BATCH_SIZE, MAX_BATCH_SIZE),
            vol.Required(CONF_FLUSH_INTERVAL): _number(MIN_FLUSH_INTERVAL, MAX_FLUSH_INTERVAL, "s"),
            vol.Required(CONF_SPOOL_CAP_MB): _number(MIN_SPOOL_CAP_MB, MAX_SPOOL_CAP_MB, "MB"),
        }
    )
    return vol.Schema(schema)


class HomeIQOptionsFlow(OptionsFlow):
    """What to capture, enrichment, batching and the spool cap; applied without restart."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form with every option."""
        errors: dict[str, str] = {}
        if user_input is not None:
            options = {**DEFAULT_OPTIONS, **user_input}
            # A cleared optional field is left out of user_input: it means "none".
            for key in LIST_OPTIONS:
                options[key] = [v.strip() for v in user_input.get(key, []) if v.strip()]
            options[CONF_WEATHER_ENTITY] = user_input.get(CONF_WEATHER_ENTITY) or None
            for key in (CONF_BATCH_SIZE, CONF_FLUSH_INTERVAL, CONF_SPOOL_CAP_MB):
                options[key] = int(user_input[key])
            if options[CONF_CAPTURE_MODE] == CAPTURE_EVENT_TYPES and not options[CONF_EVENT_TYPES]:
                errors[CONF_EVENT_TYPES] = "event_types_required"
            else:
                return self.async_create_entry(data=options)
        current = {**DEFAULT_OPTIONS, **self.config_entry.options, **(user_input or {})}
        # With no weather entity in Home Assistant the picker would show its "No matching
        # entities found" where a value goes: leave the field out until there is one.
        weather_field = bool(
            self.hass.states.async_entity_ids("weather") or current[CONF_WEATHER_ENTITY]
        )
        # An empty suggestion is no suggestion (None would be shown as a value).
        suggested = {key: value for key, value in current.items() if value is not None}
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(weather_field), suggested
            ),
            errors=errors,
        )
