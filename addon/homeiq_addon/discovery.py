"""Announce the add-on to Home Assistant through the Supervisor's discovery API.

Home Assistant then offers a one-click setup of the integration with host, port and
token filled in. The Supervisor may not be ready when the add-on starts, so the
announcement is retried with capped exponential backoff until it is accepted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Final

import aiohttp
import msgspec

from .contract import DISCOVERY_SERVICE, Discovery, DiscoveryConfig

_LOGGER = logging.getLogger(__name__)
DEFAULT_SUPERVISOR: Final = "http://supervisor"


def discovery_payload(port: int, token: str) -> Discovery:
    """The contract's discovery message: where this add-on listens, and its token."""
    host = os.environ.get("HOMEIQ_HOST") or socket.gethostname()
    return Discovery(DISCOVERY_SERVICE, DiscoveryConfig(host=host, port=port, token=token))


async def announce(
    port: int,
    token: str,
    *,
    first_delay: float = 1.0,
    max_delay: float = 300.0,
) -> str | None:
    """POST /discovery until the Supervisor accepts; return its discovery uuid.

    Does nothing (returns None) outside the Supervisor, where SUPERVISOR_TOKEN is unset.
    """
    supervisor_token = os.environ.get("SUPERVISOR_TOKEN")
    if not supervisor_token:
        return None
    url = os.environ.get("SUPERVISOR_URL", DEFAULT_SUPERVISOR).rstrip("/") + "/discovery"
    payload = msgspec.json.encode(discovery_payload(port, token))
    headers = {
        "Authorization": f"Bearer {supervisor_token}",
        "Content-Type": "application/json",
    }
    delay = first_delay
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        while True:
            try:
                async with session.post(url, data=payload, headers=headers) as resp:
                    if resp.status == 200:
                        body = await resp.json(content_type=None)
                        uuid = (
                            (body.get("data") or {}).get("uuid") if isinstance(body, dict) else None
                        )
                        _LOGGER.info("Announced to Home Assistant via Supervisor discovery")
                        return str(uuid) if uuid else ""
                    # The token is never logged; the Supervisor's answer is.
                    _LOGGER.warning(
                        "Supervisor discovery answered %s; retrying in %.0f s", resp.status, delay
                    )
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                _LOGGER.warning("Supervisor discovery failed (%s); retrying in %.0f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
