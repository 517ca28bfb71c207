"""The event fields stored as rows of the ``registry``, ``causes`` and ``snapshots``
tables, in the order of those tables' columns.

Apart from ids.py, which interns them, because the decode worker needs the names alone:
ids.py imports sqlite3 and hashlib (OpenSSL, ~3.5 MB of the worker's RSS).
"""

from __future__ import annotations

from typing import Final

REGISTRY_KEYS: Final = (
    "area_id",
    "area",
    "floor",
    "device_id",
    "device_name",
    "device_manufacturer",
    "device_model",
    "labels",
    "device_class",
    "state_class",
    "unit",
    "friendly_name",
)
CAUSE_KEYS: Final = ("cause", "cause_name", "cause_id")
SNAP_KEYS: Final = ("outdoor_temperature", "weather_condition", "sun_elevation", "people_home")
