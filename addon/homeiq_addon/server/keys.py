"""What every route may share, stored on the aiohttp application under typed keys.

Each capability keeps the keys of its own parts next to them (ingest/keys.py,
live/stream.py's HUB, history/providers.py's HISTORY).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import time

from aiohttp import web

from ..config import Config
from ..contract import MirrorTarget
from ..store.db import Store


@dataclass(slots=True)
class Runtime:
    """Process state: identity and what happened since start."""

    token: str
    instance_id: str
    started: float = field(default_factory=time.monotonic)


CONFIG = web.AppKey("homeiq_config", Config)
STORE = web.AppKey("homeiq_store", Store)
RUNTIME = web.AppKey("homeiq_runtime", Runtime)
# What the mirror reports of its targets (mirror/routes.py sets it; health and stats
# show it without importing the mirror).
MIRROR_REPORT = web.AppKey[Callable[[], Awaitable[list[MirrorTarget]]]]("homeiq_mirror_report")
