"""The documents name exactly the Home Assistant releases the tests run on."""

from __future__ import annotations

import json
from pathlib import Path
import re

from homeassistant.const import __version__ as running

ROOT = Path(__file__).resolve().parents[2]


def _versions_named(text: str) -> set[str]:
    return set(re.findall(r"\b20\d\d\.\d{1,2}\.\d+\b", text))


def test_this_release_is_named_where_users_look() -> None:
    """hacs.json's minimum is the oldest tested release; the README's versions section and
    the app's documentation name the release this run is on, and only tested ones."""
    readme = ROOT.joinpath("README.md").read_text().split("## Versions", 1)[1]
    docs = ROOT.joinpath("addon", "DOCS.md").read_text().split("## Versions", 1)[1]
    docs = docs.split("\n## ", 1)[0]
    tested = _versions_named(readme)
    assert running in tested
    assert _versions_named(docs) == tested
    minimum = json.loads(ROOT.joinpath("hacs.json").read_text())["homeassistant"]
    assert minimum == min(tested, key=lambda v: tuple(map(int, v.split("."))))
