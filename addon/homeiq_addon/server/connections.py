"""The service's HTTP connections: bounded waits for stalled clients, and errors that echo
nothing a client sent.

Left to itself, aiohttp 3.11 waits as long as a client likes for a request head and for a
request body, keeps an idle connection for an hour, inflates compressed bodies before any
middleware has looked at the request, and answers a request it cannot parse with the raw
bytes of the offending line in the body of the 400 (an Authorization header included), logged
at ERROR. Each connection here is a GuardedConnection instead:

- a new connection must complete its first request head within ``header_timeout``;
- between requests a connection may stay idle for ``idle_timeout`` (aiohttp's keep-alive);
- a request body must be complete within ``body_timeout`` of its head: reading it then
  raises BodyLost, answered 408 by the error middleware, and the connection closes; a
  body whose framing breaks (a bad chunk) raises BodyBroken at once, answered 400;
- bodies are not inflated here (body.py does it, after authentication, bounded);
- a request that is not valid HTTP is answered 400 in JSON with the parser's reason only,
  and logged at debug without any of its bytes (here, not by the error middleware: no
  request reaches the application).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from itertools import islice
import logging
import re
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from ..errors import BodyBroken, BodyLost
from .responses import error

_LOGGER = logging.getLogger(__name__)

# llhttp's reasons are fixed phrases ("Invalid header value char"); aiohttp appends the
# raw bytes after ":\n\n", which is what must never be echoed.
_PARSER_REASON: Final = re.compile(r"[A-Za-z][A-Za-z ,'-]*")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds a client may stall; see the module docstring."""

    header: float
    idle: float
    body: float


def _reason(exc: HttpProcessingError) -> str:
    head, sep, _ = exc.message.partition(":\n")
    if sep and _PARSER_REASON.fullmatch(head):
        return head
    if isinstance(exc, LineTooLong):
        return "a line of the request is too long"
    if isinstance(exc, BadHttpMethod):
        return "invalid method"
    return "invalid request line or header"


class GuardedConnection(web.RequestHandler):
    """aiohttp's connection handler with the service's timeouts and error answers."""

    def __init__(self, manager: web.Server, *, timeouts: Timeouts, **kwargs: Any) -> None:
        kwargs["keepalive_timeout"] = timeouts.idle
        kwargs["auto_decompress"] = False
        super().__init__(manager, **kwargs)
        self._timeouts = timeouts
        self._head_timer: asyncio.TimerHandle | None = None
        # The body still arriving, with its deadline: the parser reads one request at a
        # time, so there is at most one.
        self._bodies: dict[StreamReader, asyncio.TimerHandle] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = asyncio.get_running_loop().call_later(
            self._timeouts.header, self._head_overdue
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = len(self._messages)
        super().data_received(data)
        arrived = list(islice(self._messages, waiting, None))
        if not arrived:
            return
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        for message, payload in arrived:
            # aiohttp queues a parse error as a message of its own (with the exception),
            # after the request whose body it broke; that body's reader would wait for more.
            problem = getattr(message, "exc", None)
            if isinstance(problem, HttpProcessingError):
                self._lose_bodies(BodyBroken(f"body: not valid HTTP: {_reason(problem)}"))
            elif not payload.is_eof():
                self._watch_body(payload)

    def _watch_body(self, payload: StreamReader) -> None:
        self._bodies[payload] = asyncio.get_running_loop().call_later(
            self._timeouts.body, self._body_overdue
        )

        def done() -> None:
            if timer := self._bodies.pop(payload, None):
                timer.cancel()

        payload.on_eof(done)

    def _lose_bodies(self, problem: BodyLost) -> None:
        for payload, timer in self._bodies.items():
            timer.cancel()
            if payload.exception() is None:
                payload.set_exception(problem)
        self._bodies.clear()

    def _head_overdue(self) -> None:
        self._head_timer = None
        _LOGGER.debug(
            "closing a connection that sent no complete request within %g s",
            self._timeouts.header,
        )
        self.force_close()

    def _body_overdue(self) -> None:
        _LOGGER.debug("a request body was not complete within %g s", self._timeouts.body)
        self._lose_bodies(BodyLost(f"body: not received within {self._timeouts.body:g} s"))

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, *self._bodies.values()):
            if timer is not None:
                timer.cancel()
        self._head_timer = None
        self._bodies.clear()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # Neither exc nor message may be logged or answered: they hold the raw request.
        reason = _reason(exc)
        _LOGGER.debug("refused a request from %s, not valid HTTP: %s", request.remote, reason)
        response = error(status, "bad_request", f"the request is not valid HTTP: {reason}")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's Server, handing out GuardedConnections."""

    def __init__(self, handler: Any, *, timeouts: Timeouts, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._timeouts = timeouts

    def __call__(self) -> web.RequestHandler:
        return GuardedConnection(self, loop=self._loop, timeouts=self._timeouts, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server is a GuardedServer."""

    def __init__(self, app: web.Application, *, timeouts: Timeouts, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._timeouts = timeouts

    async def _make_server(self) -> web.Server:
        # The application's own server (made after its startup hooks ran) with its request
        # handler, request factory and settings, but GuardedConnections.
        server = await super()._make_server()
        return GuardedServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            timeouts=self._timeouts,
            # The settings aiohttp gathered for its handlers (debug, access log, ours).
            **server._kwargs,
        )
