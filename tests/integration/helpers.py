"""Registry fixtures shared by the capture and contract tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry


async def registries(hass: HomeAssistant) -> dict[str, Any]:
    """An area on a floor, a label, and a device in that area with a labeled power sensor."""
    other = MockConfigEntry(domain="test")
    other.add_to_hass(hass)
    floor = fr.async_get(hass).async_create("Ground")
    area = ar.async_get(hass).async_create("Kitchen", floor_id=floor.floor_id)
    label = lr.async_get(hass).async_create("Energy")
    dev_reg = dr.async_get(hass)
    device = dev_reg.async_get_or_create(
        config_entry_id=other.entry_id,
        identifiers={("test", "plug1")},
        name="Plug",
        manufacturer="Acme",
        model="P1",
    )
    dev_reg.async_update_device(device.id, area_id=area.id)
    ent_reg = er.async_get(hass)
    entity = ent_reg.async_get_or_create(
        "sensor",
        "test",
        "plug1-power",
        suggested_object_id="plug_power",
        device_id=device.id,
        original_device_class="power",
        unit_of_measurement="W",
    )
    ent_reg.async_update_entity(entity.entity_id, labels={label.label_id})
    return {"floor": floor, "area": area, "label": label, "device": device}


HOLD_S = 5.0


class FlakyProxy:
    """A real HTTP hop in front of the add-on that misbehaves on the first ingest."""

    def __init__(self, upstream: str, mode: str, hold_first: bool = False) -> None:
        self.upstream = upstream
        self.mode = mode  # "drop_ack", "429", "422", "500", "old_api" or "new_api"
        # Hold the first ingest until a second one arrives (for at most HOLD_S): both are
        # then on the wire at once, and the first ends (as `mode` says) after the second.
        self.hold_first = hold_first
        self.ingests = 0
        self.on_wire = 0
        self.most_on_wire = 0
        self._second = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counted = False
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client hung up before asking anything (an unload)
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = dict(line.split(": ", 1) for line in lines[1:] if line)
            length = int(headers.get("Content-Length", "0"))
            body = await reader.readexactly(length) if length else None
            first = False
            if path == "/api/v1/ingest":
                self.ingests += 1
                first = self.ingests == 1
                self.on_wire += 1
                counted = True
                self.most_on_wire = max(self.most_on_wire, self.on_wire)
                if self.ingests == 2:
                    self._second.set()
                if first and self.hold_first:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HOLD_S):
                            await self._second.wait()
                    await asyncio.sleep(0.2)  # the second one's answer goes first
            if first and self.mode in ("429", "422", "500"):
                status_line = {
                    "429": b"429 Too Many Requests",
                    "422": b"422 Unprocessable",
                    "500": b"500 Internal Server Error",
                }
                payload = b'{"error": "invalid_batch", "message": "events[0].state: too long"}'
                writer.write(
                    b"HTTP/1.1 " + status_line[self.mode] + b"\r\nRetry-After: 0\r\n"
                    b"Content-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + payload
                )
                return
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    method,
                    self.upstream + path,
                    data=body,
                    headers={"Authorization": headers.get("Authorization", "")},
                ) as resp,
            ):
                payload = await resp.read()
                status = resp.status
            if first and self.mode == "drop_ack":
                return  # committed upstream, but the client never hears about it
            if self.mode == "old_api" and path == "/api/v1/health":
                payload = payload.replace(b'"api_version":1', b'"api_version":99')
            if self.mode == "new_api" and path == "/api/v1/health":
                # A later API version that also answers in another shape.
                payload = payload.replace(b'"api_version":1', b'"api_version":2').replace(
                    b'"status":', b'"state":'
                )
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
        finally:
            if counted:
                self.on_wire -= 1
            # The client may have hung up already (a timeout, an unload): not this hop's error.
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
