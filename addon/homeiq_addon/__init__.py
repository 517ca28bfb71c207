"""HomeIQ add-on: the event store service (``python -m homeiq_addon``)."""

# THE add-on's version. addon/config.yaml's `version`, pyproject.toml's `version` and the
# newest released heading of addon/CHANGELOG.md repeat it for the tools that read them;
# tests/addon/test_packaging.py fails when one differs. (The API version is the
# contract's: contract.API_VERSION.)
__version__ = "0.1.0"
