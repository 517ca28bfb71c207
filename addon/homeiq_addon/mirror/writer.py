"""Writes to one mirror target through influxdb-client's async API, every answer handled.

A write either lands, or raises one of the three kinds of ``.errors`` — there is no mode
that drops a failure. What each answer means:

- 2xx: written.
- 400, 413, 422: the points are refused (InfluxDB: a parse error, a field type clash,
  a point outside the bucket's retention; 413: too big a body). The batch is split in
  halves and written again until each refused line stands alone; those are returned as
  ``refused``, the rest is written. When a batch of at least ``SYSTEMIC_LINES`` lines
  has no line taken, the target refuses everything, which is about the target, not the
  points: ``AccessRefused``, nothing set aside.
- 400 whose message is about the token (vmauth 1.79 answers an unknown bearer token so),
  401, 403, 404 (org or bucket missing), a TLS failure, any other 4xx:
  ``AccessRefused`` — fix the target's settings; retried slowly meanwhile.
- 408, 429, 5xx, connection refused or reset, timeout: ``EngineUnavailable``, with the
  answer's Retry-After when it had one.

Writes are idempotent (``.points``), so writing a batch again after any failure, even one
the engine had partly applied, counts every point once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
import random
import time
from typing import TYPE_CHECKING, Any, Final, Self, cast

import aiohttp
import orjson

from .errors import AccessRefused, ContentRefused, EngineUnavailable, MirrorError
from .points import body

if TYPE_CHECKING:
    from influxdb_client.rest import ApiException

SYSTEMIC_LINES: Final = 16
# The longest wait a Retry-After is taken for; a longer one is read as this.
MAX_RETRY_AFTER_S: Final = 3600.0
_MESSAGE_CHARS: Final = 300
_TOKEN_WORDS: Final = ("auth token", "authorization", "unauthorized")


@dataclass(frozen=True, slots=True)
class Target:
    """Where to write: an InfluxDB v2 write API (InfluxDB 2/3, Cloud, VictoriaMetrics)."""

    name: str
    url: str
    token: str = field(repr=False)
    org: str
    bucket: str
    verify_ssl: bool = True
    timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class Refused:
    """A line the target refused for its content, with what the target said."""

    line: str
    reason: str


@dataclass(slots=True)
class WriteOutcome:
    written: int = 0
    refused: list[Refused] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reachable:
    """The target took a write: the engine's build and version headers, as answered."""

    build: str | None
    version: str | None
    round_trip_ms: float


@dataclass(slots=True)
class Backoff:
    """How long to wait before writing again after each failure."""

    first_s: float = 1.0
    max_s: float = 300.0
    # Settings are corrected by a person: asking again every minute is soon enough.
    access_s: float = 60.0
    failures: int = 0

    def next_delay(self, error: MirrorError) -> float:
        self.failures += 1
        if isinstance(error, EngineUnavailable) and error.retry_after is not None:
            return error.retry_after
        if isinstance(error, AccessRefused):
            return self.access_s
        ceiling = min(self.max_s, self.first_s * 2.0 ** min(self.failures - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def succeeded(self) -> None:
        self.failures = 0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), at most
    ``MAX_RETRY_AFTER_S``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    wait = when - (time.time() if now is None else now)
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


class TargetWriter:
    """One target's client. Use as ``async with TargetWriter(target) as writer``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._client: Any = None
        self._write_api: Any = None
        # The client's classes, imported with the first client (_open).
        self._api_exception: type[Exception] = _NeverRaised
        self._write_service: Any = None
        self._precision: Any = None

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(self) -> Any:
        # The client makes its aiohttp session at once: only inside the running loop.
        if self._client is None:
            # Imported here, not with the module: influxdb_client and what it pulls in
            # take about 14 MB of the add-on's memory, and most add-ons mirror nowhere.
            from influxdb_client.client.influxdb_client_async import (  # noqa: PLC0415
                InfluxDBClientAsync,
            )
            from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415
            from influxdb_client.rest import ApiException  # noqa: PLC0415
            from influxdb_client.service.write_service import WriteService  # noqa: PLC0415

            self._api_exception = ApiException
            self._write_service = WriteService
            self._precision = WritePrecision.US
            self._client = InfluxDBClientAsync(
                url=self.target.url,
                token=self.target.token,
                org=self.target.org,
                timeout=int(self.target.timeout_s * 1000),
                verify_ssl=self.target.verify_ssl,
            )
            self._write_api = self._client.write_api()
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._write_api = self._client, None, None
            await client.close()

    async def write(self, lines: Sequence[str]) -> WriteOutcome:
        """Write the lines (``.points``); refused lines come back in the outcome.
        Raises ``AccessRefused`` or ``EngineUnavailable``: then write them all again."""
        outcome = WriteOutcome()
        await self._write(lines, outcome)
        if len(lines) >= SYSTEMIC_LINES and outcome.written == 0:
            raise AccessRefused(
                f"{self.target.name}: refused all {len(lines)} points of a batch, so the"
                f" target refuses every write; last answer: {outcome.refused[-1].reason}"
            )
        return outcome

    async def _write(self, lines: Sequence[str], outcome: WriteOutcome) -> None:
        if not lines:
            return
        try:
            await self._post(body(lines))
        except ContentRefused as refused:
            if len(lines) == 1:
                outcome.refused.append(Refused(lines[0], refused.message))
                return
            half = len(lines) // 2
            await self._write(lines[:half], outcome)
            await self._write(lines[half:], outcome)
            return
        outcome.written += len(lines)

    async def deliver(
        self,
        lines: Sequence[str],
        backoff: Backoff,
        on_error: Callable[[MirrorError], None] | None = None,
    ) -> WriteOutcome:
        """Write until the target has taken or refused every line, waiting as ``backoff``
        says after each failure (``on_error`` hears of each). Cancel it to stop."""
        while True:
            try:
                outcome = await self.write(lines)
            except MirrorError as error:
                if on_error is not None:
                    on_error(error)
                await asyncio.sleep(backoff.next_delay(error))
                continue
            backoff.succeeded()
            return outcome

    async def test_connection(self) -> Reachable:
        """A write of no points: the target checks the token, org and bucket as for any
        write, and nothing is stored. Raises the error a real write would get."""
        client = self._open()
        started = time.perf_counter()
        try:
            _, _, headers = await self._send(
                self._write_service(client.api_client).post_write_async(
                    org=self.target.org,
                    bucket=self.target.bucket,
                    body=b"",
                    precision=self._precision,
                    content_type="text/plain; charset=utf-8",
                    _return_http_data_only=False,
                )
            )
        except ContentRefused as refused:
            # InfluxDB 2 answers an empty write "writing requires points" (400) once it
            # has accepted the token, org and bucket.
            if "requires points" not in refused.message:
                raise
            headers = refused.headers
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Reachable(
            build=headers.get("X-Influxdb-Build") if headers else None,
            version=headers.get("X-Influxdb-Version") if headers else None,
            round_trip_ms=round(elapsed_ms, 1),
        )

    async def _post(self, data: bytes) -> None:
        self._open()
        await self._send(
            self._write_api.write(
                self.target.bucket, self.target.org, data, write_precision=self._precision
            )
        )

    async def _send(self, request: Any) -> Any:
        name = self.target.name
        try:
            return await request
        except self._api_exception as error:
            raise self._classify(cast("ApiException", error)) from None
        except aiohttp.ClientSSLError as error:
            raise AccessRefused(f"{name}: TLS failed: {self._redact(str(error))}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = self._redact(str(error)) or type(error).__name__
            raise EngineUnavailable(f"{name}: cannot reach {self.target.url}: {reason}") from None

    def _classify(self, error: ApiException) -> MirrorError:
        status = int(error.status or 0)
        headers = error.headers or {}
        said = self._message(error.body) or str(error.reason or "")
        message = f"{self.target.name}: HTTP {status}: {said}"
        result: MirrorError
        if status in (401, 403) or (status == 400 and _about_token(said)):
            result = AccessRefused(f"{message} (check the token and its permissions)")
        elif status == 404:
            result = AccessRefused(f"{message} (check the URL, org and bucket)")
        elif status in (400, 413, 422):
            result = ContentRefused(message, headers=headers)
        elif status in (408, 429) or status >= 500:
            result = EngineUnavailable(
                message, retry_after=retry_after_seconds(headers.get("Retry-After"))
            )
        else:
            result = AccessRefused(f"{message} (check the URL)")
        return result

    def _message(self, raw: Any) -> str:
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        if not raw:
            return ""
        text = str(raw)
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            text = parsed["message"]
        return self._redact(" ".join(text.split()))[:_MESSAGE_CHARS]

    def _redact(self, text: str) -> str:
        token = self.target.token
        return text.replace(token, "***") if token else text


class _NeverRaised(Exception):
    """What ``_send`` catches before a client was made (none can answer then)."""


def _about_token(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _TOKEN_WORDS)
