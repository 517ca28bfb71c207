"""The add-on folder is what the Supervisor accepts and what its store shows.

The Supervisor is not a PyPI package, so its add-on config schema is restated here
from supervisor/addons/validate.py: the keys it knows, their types, and their defaults
(which config.yaml must not repeat).
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import tomllib
from typing import Any

from PIL import Image
import pytest
import voluptuous as vol
import yaml

from homeiq_addon import __version__
from homeiq_addon.config import OPTIONS, Config
from homeiq_addon.store.db import DB_NAME

ADDON = Path(__file__).parents[2] / "addon"
ROOT = ADDON.parent

ARCHES = ["aarch64", "amd64", "armhf", "armv7", "i386"]
MAP_TYPES = [
    "data",
    "share",
    "backup",
    "ssl",
    "media",
    "homeassistant_config",
    "addon_config",
    "all_addon_configs",
    "addons",
]
# An options schema element, as the Supervisor parses it.
SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool|email|url|port|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
# Keys whose value the Supervisor fills in when absent: repeating it is noise.
DEFAULTS: dict[str, Any] = {
    "startup": "application",
    "boot": "auto",
    "init": True,
    "advanced": False,
    "stage": "stable",
    "ingress": False,
    "ingress_port": 8099,
    "ingress_stream": False,
    "panel_icon": "mdi:puzzle",
    "panel_admin": True,
    "host_network": False,
    "host_pid": False,
    "host_ipc": False,
    "host_uts": False,
    "host_dbus": False,
    "udev": False,
    "tmpfs": False,
    "map": [],
    "apparmor": True,
    "full_access": False,
    "audio": False,
    "video": False,
    "gpio": False,
    "usb": False,
    "uart": False,
    "devicetree": False,
    "kernel_modules": False,
    "realtime": False,
    "hassio_api": False,
    "hassio_role": "default",
    "homeassistant_api": False,
    "stdin": False,
    "legacy": False,
    "docker_api": False,
    "auth_api": False,
    "backup": "hot",
    "options": {},
    "schema": {},
    "ulimits": {},
    "timeout": 10,
    "journald": False,
    "breaking_versions": [],
}
_OPTIONAL = {vol.Optional(key): object for key in DEFAULTS}
ADDON_CONFIG = vol.Schema(
    {
        **_OPTIONAL,
        vol.Required("name"): str,
        vol.Required("version"): vol.Match(r"^\d+\.\d+\.\d+$"),
        vol.Required("slug"): vol.Match(r"^[-_.A-Za-z0-9]+$"),
        vol.Required("description"): str,
        vol.Required("arch"): [vol.In(ARCHES)],
        vol.Optional("url"): vol.Url(),
        vol.Optional("init"): bool,
        vol.Optional("ingress"): bool,
        vol.Optional("panel_icon"): vol.Match(r"^mdi:[a-z0-9-]+$"),
        vol.Optional("panel_title"): str,
        vol.Optional("ports"): {vol.Match(r"^\d+/(tcp|udp)$"): vol.Any(None, int)},
        vol.Optional("ports_description"): {vol.Match(r"^\d+/(tcp|udp)$"): str},
        vol.Optional("map"): [
            {
                vol.Required("type"): vol.In(MAP_TYPES),
                vol.Optional("read_only"): bool,
                vol.Optional("path"): str,
            }
        ],
        vol.Optional("discovery"): [str],
        vol.Optional("backup_exclude"): [str],
        vol.Optional("backup_pre"): str,
        vol.Optional("backup_post"): str,
        vol.Optional("options"): dict,
        # An element, or a list of dictionaries of elements (the mirror's targets).
        vol.Optional("schema"): {
            str: vol.Any(vol.Match(SCHEMA_ELEMENT), [{str: vol.Match(SCHEMA_ELEMENT)}])
        },
        vol.Optional("image"): str,
    },
    extra=vol.PREVENT_EXTRA,
)
TRANSLATIONS = vol.Schema(
    {
        vol.Optional("configuration"): {
            str: {vol.Required("name"): str, vol.Optional("description"): str}
        },
        vol.Optional("network"): {str: str},
    },
    extra=vol.PREVENT_EXTRA,
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(name="config")
def config_fixture() -> dict[str, Any]:
    config: dict[str, Any] = _yaml(ADDON / "config.yaml")
    return config


def test_config_passes_the_supervisor_schema(config: dict[str, Any]) -> None:
    ADDON_CONFIG(config)
    assert config["ingress"] is True
    assert config["discovery"] == ["homeiq"]
    assert sorted(config["arch"]) == ["aarch64", "amd64"]
    assert config["panel_icon"].startswith("mdi:")


def test_config_sets_no_key_to_its_default(config: dict[str, Any]) -> None:
    repeated = [key for key, default in DEFAULTS.items() if config.get(key, object()) == default]
    assert repeated == []
    assert "watchdog" not in config, "the Dockerfile HEALTHCHECK replaces watchdog"


def test_every_option_has_a_schema_and_a_translation(config: dict[str, Any]) -> None:
    translations = TRANSLATIONS(_yaml(ADDON / "translations" / "en.yaml"))
    assert set(config["options"]) == set(config["schema"])
    assert set(translations["configuration"]) == set(config["schema"])
    assert set(translations["network"]) == set(config["ports"])


def test_options_defaults_satisfy_their_schema(config: dict[str, Any]) -> None:
    for key, element in config["schema"].items():
        value = config["options"][key]
        if isinstance(element, list):
            assert isinstance(value, list), key
            continue
        match = SCHEMA_ELEMENT.match(element)
        assert match, key
        if match["i_min"] is not None:
            assert int(match["i_min"]) <= value, key
        if match["i_max"] is not None:
            assert value <= int(match["i_max"]), key
        if match["list"] is not None:
            assert value in match["list"].split("|"), key
        if match["match"] is not None:
            assert re.fullmatch(match["match"], value), key


def test_dockerfile_names_its_base_image_and_needs_no_build_yaml() -> None:
    # The Supervisor passes BUILD_FROM only for add-ons that ship the deprecated build.yaml.
    assert not (ADDON / "build.yaml").exists()
    dockerfile = (ADDON / "Dockerfile").read_text()
    base = re.search(r"^ARG BUILD_FROM=(\S+)$", dockerfile, re.MULTILINE)
    assert base, "BUILD_FROM needs a default"
    # A multi-arch Python image: one name serves every architecture config.yaml declares.
    assert re.fullmatch(r"ghcr\.io/home-assistant/base-python:3\.13-alpine[0-9.]+", base[1])
    assert "FROM ${BUILD_FROM}" in dockerfile


def test_dockerfile_has_a_healthcheck_on_the_minimal_health_route() -> None:
    dockerfile = (ADDON / "Dockerfile").read_text()
    healthcheck = next(line for line in dockerfile.splitlines() if "HEALTHCHECK" in line)
    assert "--interval" in healthcheck
    assert "/api/v1/health?minimal=1" in dockerfile


def test_license_matches_the_image_label() -> None:
    dockerfile = (ADDON / "Dockerfile").read_text()
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in dockerfile
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == (
        "Apache-2.0"
    )


def test_service_scripts_are_executable_and_start_the_package() -> None:
    service = ADDON / "rootfs/etc/s6-overlay/s6-rc.d/homeiq"
    assert (service / "type").read_text().strip() == "longrun"
    assert (ADDON / "rootfs/etc/s6-overlay/s6-rc.d/user/contents.d/homeiq").exists()
    for script in (service / "run", service / "finish", ADDON / "rootfs/usr/bin/homeiq-snapshot"):
        assert os.access(script, os.X_OK), script
    assert "python3 -m homeiq_addon" in (service / "run").read_text()


def test_container_requirements_match_the_project() -> None:
    pins = dict(
        line.split("==")
        for line in (ADDON / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=]", dep)[0] for dep in project["dependencies"]}
    assert set(pins) == names


def test_store_images_have_the_documented_sizes() -> None:
    with Image.open(ADDON / "icon.png") as icon:
        assert icon.size == (128, 128)
    with Image.open(ADDON / "logo.png") as logo:
        assert logo.size == (250, 100)


def test_repository_and_hacs_manifests() -> None:
    repository = _yaml(ROOT / "repository.yaml")
    assert set(repository) == {"name", "url", "maintainer"}
    assert (ADDON / "apparmor.txt").read_text().count("profile homeiq") == 1


def test_both_parts_ship_the_same_contract() -> None:
    """Each part is installed without the other, so each carries the contract; a change
    made to one copy only would let the integration and the add-on disagree."""
    addon_copy = (ADDON / "homeiq_addon" / "contract.py").read_bytes()
    integration_copy = (ROOT / "custom_components" / "homeiq" / "contract.py").read_bytes()
    assert integration_copy == addon_copy, (
        "custom_components/homeiq/contract.py differs from addon/homeiq_addon/contract.py;"
        " edit the add-on's copy and copy it over"
    )


def test_options_are_the_ones_config_py_declares(config: dict[str, Any]) -> None:
    """config.py's OPTIONS is the one declaration: config.yaml's options and schema, the
    service's defaults and DOCS.md's table all say the same."""
    assert config["options"] == {name: o.default for name, o in OPTIONS.items()}
    assert config["schema"] == {name: o.supervisor for name, o in OPTIONS.items()}
    defaults = Config(data_dir=ROOT)
    assert {name: getattr(defaults, name) for name in OPTIONS} == config["options"]
    rows = re.findall(
        r"^\| `([a-z_]+)` \| .+ \| `?([^`|]+?)`? \|$",
        (ADDON / "DOCS.md").read_text().split("## Options", 1)[1].split("\n## ", 1)[0],
        re.MULTILINE,
    )
    assert dict(rows) == {name: str(o.default) for name, o in OPTIONS.items()}


def test_one_version_everywhere(config: dict[str, Any]) -> None:
    """homeiq_addon.__version__ is the version; every file that states it agrees."""
    assert config["version"] == __version__
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == (
        __version__
    )
    released = re.findall(r"^## (\d+\.\d+\.\d+)", (ADDON / "CHANGELOG.md").read_text(), re.M)
    assert released[0] == __version__


def test_supervisor_backups_leave_out_the_live_database(config: dict[str, Any]) -> None:
    """The live files (the store's one database name) are left out; the snapshot is kept."""
    live = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"}
    assert live <= set(config["backup_exclude"])
