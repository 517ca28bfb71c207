"""Client for the HomeIQ add-on's HTTP API.

The answers the integration reads (health, stats, the acknowledgement) are decoded into
the contract's types; an answer that does not fit them is an error naming the field.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import orjson

from .contract import API_VERSION, Ack, Error, Health, HealthMinimal, Stats

REQUEST_TIMEOUT = 30.0
# The reachability probe answers at once when the add-on is up.
PING_TIMEOUT = 2.0


class HomeIQError(Exception):
    """Base error talking to the add-on."""


class HomeIQConnectionError(HomeIQError):
    """The add-on could not be reached (or answered with a server error)."""


class HomeIQServerError(HomeIQConnectionError):
    """The add-on answered, with a server error: it is up, but failing."""


class HomeIQContractError(HomeIQServerError):
    """The add-on answered with a payload its contract does not allow (another API version?).

    Treated as a failing add-on: a batch is sent again (the add-on stores it once).
    """


class HomeIQIncompatibleError(HomeIQContractError):
    """The add-on speaks another API version, and its health cannot be read as ours."""

    def __init__(self, version: str, api_version: int) -> None:
        """Keep the versions it reported (for the repair issue)."""
        super().__init__(f"Add-on API version {api_version} is not {API_VERSION}: update both")
        self.version = version
        self.api_version = api_version


class HomeIQAuthError(HomeIQError):
    """The add-on refused the token."""


class HomeIQRateLimitedError(HomeIQConnectionError):
    """The add-on asked us to slow down (429/503); retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        """Keep the server's Retry-After hint."""
        super().__init__(message)
        self.retry_after = retry_after


class HomeIQResponseError(HomeIQError):
    """The add-on rejected the request as invalid (4xx other than auth)."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        """Keep the status and the add-on's error code."""
        super().__init__(message)
        self.status = status
        self.code = code


class _Versions(msgspec.Struct):
    """What the health answer of any API version says: which versions it speaks."""

    api_version: int
    version: str = "unknown"


def _retry_after(value: str | None) -> float | None:
    """Parse a Retry-After header given in seconds; dates are rare enough to ignore."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HomeIQClient:
    """Talk to one add-on instance: `url` like http://host:8765, bearer `token`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        """Store the session and where to reach the add-on."""
        self._session = session
        self.url = url.rstrip("/")
        self._token = token
        # What the add-on said it reads beyond the first form (contract Health.features),
        # as of its last health answer: none until one came.
        self.addon_features: frozenset[str] = frozenset()

    def uses_token(self, token: str) -> bool:
        """Whether requests carry `token`; the token itself stays private to the client."""
        return token == self._token

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | memoryview | None = None,
        deadline: float = REQUEST_TIMEOUT,
    ) -> Any:
        """The answer as plain JSON (for answers handed on as they are)."""
        payload = await self._fetch(method, path, params, body, deadline)
        try:
            return orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError as err:
            raise HomeIQConnectionError(f"Invalid JSON from {self.url}{path}") from err

    async def _request_typed[T](
        self,
        answer: type[T],
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | memoryview | None = None,
        deadline: float = REQUEST_TIMEOUT,
    ) -> T:
        """The answer decoded into one of the contract's types."""
        return self._decode(answer, path, await self._fetch(method, path, params, body, deadline))

    def _decode[T](self, answer: type[T], path: str, payload: bytes) -> T:
        try:
            return msgspec.json.decode(payload, type=answer)
        except msgspec.ValidationError as err:  # says which field, e.g. "at `$.version`"
            raise HomeIQContractError(f"Unexpected answer from {self.url}{path}: {err}") from err
        except msgspec.DecodeError as err:
            raise HomeIQConnectionError(f"Invalid JSON from {self.url}{path}") from err

    async def _fetch(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: bytes | memoryview | None,
        deadline: float,
    ) -> bytes:
        """The body of a successful answer; every failure as one of the errors above."""
        headers = {"Authorization": f"Bearer {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(deadline):
                async with self._session.request(
                    method, f"{self.url}{path}", params=params, data=body, headers=headers
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
        except TimeoutError as err:
            raise HomeIQConnectionError(f"Timeout talking to {self.url}") from err
        except aiohttp.ClientError as err:
            raise HomeIQConnectionError(f"Cannot reach {self.url}: {err}") from err
        if status < 400:
            return payload
        code, message = _error_details(payload, status)
        if status in (401, 403):
            raise HomeIQAuthError(message)
        if status in (429, 503):
            raise HomeIQRateLimitedError(message, retry_after)
        if status >= 500:
            raise HomeIQServerError(f"Add-on error {status}: {message}")
        raise HomeIQResponseError(message, status, code)

    async def async_ingest(self, body: bytes | memoryview) -> Ack:
        """Post one serialized batch; return the add-on's ack."""
        return await self._request_typed(Ack, "POST", "/api/v1/ingest", body=body)

    async def async_health(self) -> Health:
        """Return the add-on's health (status, version, api_version, instance_id...)."""
        path = "/api/v1/health"
        payload = await self._fetch("GET", path, None, None, 10)
        try:
            health = self._decode(Health, path, payload)
        except HomeIQContractError:
            # Another API version may answer differently: say so, rather than what broke.
            try:
                versions = msgspec.json.decode(payload, type=_Versions)
            except msgspec.DecodeError:
                versions = _Versions(API_VERSION)
            if versions.api_version != API_VERSION:
                raise HomeIQIncompatibleError(versions.version, versions.api_version) from None
            raise
        self.addon_features = frozenset(health.features)
        return health

    async def async_ping(self) -> None:
        """Ask the unauthenticated minimal health (cheap: no store figures are gathered)."""
        await self._request_typed(
            HealthMinimal,
            "GET",
            "/api/v1/health",
            params={"minimal": "1"},
            deadline=PING_TIMEOUT,
        )

    async def async_stats(self, period: str = "1h") -> Stats:
        """Return the add-on's stats for a period (15m, 1h, 24h, 7d)."""
        return await self._request_typed(Stats, "GET", "/api/v1/stats", params={"period": period})

    async def async_events(self, **filters: Any) -> dict[str, Any]:
        """Query stored events (entity_id, domain, event_type, area, start, end, limit, cursor)."""
        params = {key: str(value) for key, value in filters.items() if value is not None}
        result: dict[str, Any] = await self._request("GET", "/api/v1/events", params=params)
        return result

    async def async_history(self, entity_id: str, **kw: Any) -> dict[str, Any]:
        """Return one entity's history (start, end, limit, resolution)."""
        params = {key: str(value) for key, value in kw.items() if value is not None}
        result: dict[str, Any] = await self._request(
            "GET", f"/api/v1/history/{entity_id}", params=params
        )
        return result

    async def async_run_retention(self, dry_run: bool = False) -> dict[str, Any]:
        """Run retention now; with dry_run only report what would go."""
        result: dict[str, Any] = await self._request(
            "POST",
            "/api/v1/retention/run",
            body=orjson.dumps({"dry_run": dry_run}),
            deadline=300,
        )
        return result

    async def async_create_backup(self) -> dict[str, Any]:
        """Ask the add-on to write a backup of its store."""
        result: dict[str, Any] = await self._request(
            "POST", "/api/v1/backups", body=b"{}", deadline=300
        )
        return result


def _error_details(payload: bytes, status: int) -> tuple[str | None, str]:
    """The add-on's error code and message; only the status from anything else (a proxy)."""
    try:
        error = msgspec.json.decode(payload, type=Error)
    except msgspec.DecodeError:
        return None, f"HTTP {status}"
    return error.error, error.message or error.error
