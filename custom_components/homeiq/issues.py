"""Repair issues: each is raised by the condition it names and cleared when that ends.

None of them is fixable from the repairs dialog (the fix is on the add-on or in the
options), so there is no repairs platform; the issue ids double as translation keys.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import DOMAIN, ISSUE_SPOOL_FULL
from .contract import API_VERSION
from .models import HomeIQState

ISSUE_ADDON_UNREACHABLE = "addon_unreachable"
ISSUE_SPOOL_NEAR_FULL = "spool_near_full"
ISSUE_ADDON_INCOMPATIBLE = "addon_incompatible"
# One of each per mirror target, the entry and the target's name appended to the id.
ISSUE_MIRROR_RETENTION = "mirror_retention_skipped"
ISSUE_MIRROR_AUTH = "mirror_auth_failed"

UNREACHABLE_GRACE = timedelta(minutes=15)
SPOOL_WARN_RATIO = 0.8

_MB = 1024 * 1024


def _raise(
    hass: HomeAssistant,
    issue_id: str,
    severity: ir.IssueSeverity,
    placeholders: dict[str, str],
    translation_key: str | None = None,
) -> None:
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=severity,
        translation_key=translation_key or issue_id,
        translation_placeholders=placeholders,
    )


def _clear(hass: HomeAssistant, issue_id: str) -> None:
    ir.async_delete_issue(hass, DOMAIN, issue_id)


def _local_time(moment: datetime) -> str:
    """A repair placeholder is plain text: the time in HA's time zone, as people write it."""
    local = dt_util.as_local(moment)
    return f"{local:%H:%M} on {local:%Y-%m-%d} ({local.tzname()})"


class IssueTracker:
    """Keep the repair issues in step with each refresh of the coordinator."""

    def __init__(self, hass: HomeAssistant, url: str, entry_id: str) -> None:
        """Remember where the add-on lives (shown in the unreachable issue)."""
        self.hass = hass
        self.url = url
        self.entry_id = entry_id

    def update(self, state: HomeIQState) -> None:
        """Raise or clear every issue from one refresh's state."""
        self._unreachable(state)
        self._incompatible(state)
        self._spool(state)
        self._dropped(state)
        self._mirror(state)

    def _unreachable(self, state: HomeIQState) -> None:
        since = state.unreachable_since
        if since is None or dt_util.utcnow() - since < UNREACHABLE_GRACE:
            if state.addon_available or state.incompatible is not None:
                _clear(self.hass, ISSUE_ADDON_UNREACHABLE)
            return
        _raise(
            self.hass,
            ISSUE_ADDON_UNREACHABLE,
            ir.IssueSeverity.ERROR,
            {"url": self.url, "since": _local_time(since)},
        )

    def _incompatible(self, state: HomeIQState) -> None:
        addon = state.incompatible
        if addon is None:
            if state.addon_available:
                _clear(self.hass, ISSUE_ADDON_INCOMPATIBLE)
            return
        _raise(
            self.hass,
            ISSUE_ADDON_INCOMPATIBLE,
            ir.IssueSeverity.ERROR,
            {
                "addon_version": addon.version,
                "api_version": str(addon.api_version),
                "expected_api_version": str(API_VERSION),
            },
        )

    def _spool(self, state: HomeIQState) -> None:
        counters = state.pipeline
        cap = counters.spool_cap_bytes
        if cap <= 0 or counters.spool_bytes <= cap * SPOOL_WARN_RATIO:
            _clear(self.hass, ISSUE_SPOOL_NEAR_FULL)
            return
        _raise(
            self.hass,
            ISSUE_SPOOL_NEAR_FULL,
            ir.IssueSeverity.WARNING,
            {
                "percent": str(round(100 * counters.spool_bytes / cap)),
                "spool_cap_mb": str(round(cap / _MB)),
            },
        )

    def _dropped(self, state: HomeIQState) -> None:
        # The pipeline raises this one when the cap forces it to drop events.
        if state.addon_available and state.pipeline.backlog_events == 0:
            # Everything that survived has been delivered: nothing more is at risk.
            _clear(self.hass, ISSUE_SPOOL_FULL)

    def _mirror(self, state: HomeIQState) -> None:
        """Per target: raw events deleted before it received them; its token refused."""
        if not state.addon_available:
            return  # what the targets do is unknown until the add-on answers again
        raised: set[str] = set()
        for name, target in state.mirror_targets.items():
            details = {"target": name, "error": target.last_error or "none"}
            # Retention waits neither for a disabled target nor for one of rollups only
            # (no raw events to wait for: none behind); for any other, not waiting means
            # it is past the lag bound.
            behind = target.lag_events > 0 and target.status != "disabled"
            if behind and not target.retention_waits:
                issue_id = self._mirror_issue_id(ISSUE_MIRROR_RETENTION, name)
                # Past a bound of at least one hour: whole hours say it.
                lag = f"{round((target.lag_seconds or 0) / 3600)} hours"
                _raise(
                    self.hass,
                    issue_id,
                    ir.IssueSeverity.WARNING,
                    {**details, "lag": lag, "lag_events": str(target.lag_events)},
                    ISSUE_MIRROR_RETENTION,
                )
                raised.add(issue_id)
            if target.status == "auth_failed":
                issue_id = self._mirror_issue_id(ISSUE_MIRROR_AUTH, name)
                _raise(self.hass, issue_id, ir.IssueSeverity.ERROR, details, ISSUE_MIRROR_AUTH)
                raised.add(issue_id)
        # Also those of targets gone from the options, and of an earlier load of the entry.
        prefixes = tuple(
            self._mirror_issue_id(kind, "") for kind in (ISSUE_MIRROR_RETENTION, ISSUE_MIRROR_AUTH)
        )
        for domain, issue_id in list(ir.async_get(self.hass).issues):
            if domain == DOMAIN and issue_id.startswith(prefixes) and issue_id not in raised:
                _clear(self.hass, issue_id)

    def _mirror_issue_id(self, kind: str, target: str) -> str:
        return f"{kind}_{self.entry_id}_{target}"
