"""Every translation key and icon the UI modules use exists, with matching placeholders."""

from __future__ import annotations

import json
from pathlib import Path
import re
import string

from homeassistant.util.yaml import load_yaml

from custom_components.homeiq.binary_sensor import CONNECTIVITY
from custom_components.homeiq.sensor import SENSORS, STATUS_OPTIONS

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "homeiq"
STRINGS = json.loads((COMPONENT / "strings.json").read_text())
ICONS = json.loads((COMPONENT / "icons.json").read_text())


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_entities_have_names_and_icons() -> None:
    """Each entity's translation key has a name and an icon."""
    for platform, descriptions in (("sensor", SENSORS), ("binary_sensor", (CONNECTIVITY,))):
        for description in descriptions:
            key = description.translation_key
            assert key is not None
            assert STRINGS["entity"][platform][key]["name"]
            assert ICONS["entity"][platform][key]["default"].startswith("mdi:")
    assert set(STRINGS["entity"]["sensor"]["status"]["state"]) == set(STATUS_OPTIONS)
    assert set(ICONS["entity"]["sensor"]["status"]["state"]) == set(STATUS_OPTIONS) - {"ok"}


def test_translation_keys_used_in_code_exist() -> None:
    """Exceptions and issues raised by the modules are all translated."""
    used: dict[str, set[str]] = {"exceptions": set(), "issues": set()}
    for name in ("services.py", "coordinator.py", "issues.py", "pipeline.py"):
        source = (COMPONENT / name).read_text()
        used["exceptions"] |= set(re.findall(r'translation_key="(\w+)"', source))
    used["issues"] = {"addon_unreachable", "addon_incompatible", "spool_near_full", "spool_full"}
    used["exceptions"] -= used["issues"]
    for section, keys in used.items():
        missing = keys - set(STRINGS[section])
        assert not missing, (section, missing)


def test_placeholders_match_what_the_code_passes() -> None:
    """A placeholder in a message the code never fills would show as {name}."""
    issues = STRINGS["issues"]
    assert _placeholders(issues["addon_unreachable"]["description"]) == {"url", "since"}
    assert _placeholders(issues["addon_incompatible"]["description"]) == {
        "addon_version",
        "api_version",
        "expected_api_version",
    }
    assert _placeholders(issues["spool_near_full"]["description"]) == {"percent", "spool_cap_mb"}
    assert _placeholders(issues["spool_full"]["description"]) == {"dropped", "spool_cap_mb"}


def test_services_are_described() -> None:
    """Every action and field in services.yaml has a name and description, and an icon."""
    services = load_yaml(str(COMPONENT / "services.yaml"))
    assert isinstance(services, dict)
    for service, spec in services.items():
        translated = STRINGS["services"][service]
        assert translated["name"]
        assert translated["description"]
        assert ICONS["services"][service]["service"].startswith("mdi:")
        for field in spec.get("fields", {}):
            assert translated["fields"][field]["name"]
            assert translated["fields"][field]["description"]
