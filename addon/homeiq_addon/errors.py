"""The add-on's one error tree: every refusal a client can get, with its status and code.

Any layer raises these, the store included (this module imports nothing of the add-on),
and the server turns them into the contract's ``Error`` answer in one place, its error
middleware (server/responses.py); no handler builds an error answer itself. A class says
which HTTP status and which ``error`` code a client gets (``code=`` where a refusal keeps a
more precise code of its own, e.g. auth's "missing_token"); the message says what was
wrong, naming the field or parameter first ("period: expected one of 15m, 1h, 24h, 7d"),
and never repeats a secret. A capability that needs its own kind subclasses one of these
beside its code (retention's PolicyConflict(Conflict), the store's InvalidDatabase and
SchemaTooNew (InvalidBackup), StoreClosed(Unavailable)).

Start-up refusals end the process with exit code 2 (``__main__``) instead of answering:
SchemaTooNew is in the tree (a restore of a too new backup answers it as 422
invalid_backup; the database at start ends the process), TokenRefused stays apart
(config.py: it can only happen before the service listens, so it has no HTTP answer).
"""

from __future__ import annotations

from typing import ClassVar


class HomeIQError(Exception):
    """A request the add-on cannot carry out; nothing it asked for was changed."""

    status: ClassVar[int] = 500
    code: str = "internal_error"
    # The rest of the request may still be on its way: answer, then close the connection.
    closes_connection: ClassVar[bool] = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(HomeIQError):
    """The request itself is malformed: its JSON, its body's shape, a value in it."""

    status = 400
    code = "bad_request"


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidEncoding(BadRequest):
    """A compressed body that does not inflate."""

    code = "invalid_encoding"


class InvalidParameter(BadRequest):
    """A query parameter; the message starts with its name."""

    code = "invalid_parameter"


class Unauthorized(HomeIQError):
    status = 401
    code = "invalid_token"


class Forbidden(HomeIQError):
    status = 403
    code = "forbidden"


class NotFound(HomeIQError):
    status = 404
    code = "not_found"


class RequestTimeout(HomeIQError):
    """The client stopped sending the body it announced."""

    status = 408
    code = "request_timeout"
    closes_connection = True


class BodyLost(RequestTimeout, TimeoutError):
    """The request body cannot be read to its end (set on it by server/connections.py):
    it stalled past the body timeout (408 here; BodyBroken for broken framing).

    Also a TimeoutError, because when aiohttp reads what is left of an unread body after
    the response, it stops quietly on one and logs anything else at ERROR.
    """


class BodyBroken(BodyLost):
    """The HTTP framing around the body broke (a bad chunk): 400, connection closed."""

    status = 400
    code = "bad_request"


class Conflict(HomeIQError):
    """The request clashes with the store's state (a run already going, say)."""

    status = 409
    code = "conflict"


class BodyTooLarge(HomeIQError):
    status = 413
    code = "body_too_large"


class UnsupportedEncoding(HomeIQError):
    status = 415
    code = "unsupported_encoding"


class Unprocessable(HomeIQError):
    """Well-formed, but breaks a rule of the contract (a batch, a policy, a backup)."""

    status = 422
    code = "unprocessable"


class InvalidBatch(Unprocessable):
    code = "invalid_batch"


class InvalidPolicy(Unprocessable):
    code = "invalid_policy"


class InvalidBackup(Unprocessable):
    code = "invalid_backup"


class Unavailable(HomeIQError):
    """The add-on cannot answer now (the store is closing, or unreadable)."""

    status = 503
    code = "unavailable"


class InsufficientStorage(HomeIQError):
    """A file the request asks for cannot be written (the share folder, say)."""

    status = 507
    code = "insufficient_storage"
