"""What can go wrong writing to a mirror target, in three kinds that each have one remedy.

They are the add-on's errors (``..errors``): a route that reaches a target (the panel's
"test connection") lets them through and a client gets 502 with the code of the kind.
Messages name the target and what it answered, never its token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..errors import HomeIQError


class MirrorError(HomeIQError):
    """A mirror target did not take a write; the points are still in the store."""

    status: ClassVar[int] = 502
    code = "mirror_failed"
    # Whether writing the same points again can succeed without anyone changing anything.
    retry: ClassVar[bool] = True


class ContentRefused(MirrorError):
    """The target refused the points themselves (HTTP 400, 413 for one point, 422): they
    are set aside and counted, never sent again."""

    code = "target_refused_points"
    retry = False

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class AccessRefused(MirrorError):
    """The target refused this client: token, permissions, org or bucket, TLS. Nothing is
    lost; writes are tried again, slowly, until the settings are corrected."""

    code = "target_refused_access"


class EngineUnavailable(MirrorError):
    """The target could not be reached or is overloaded (connection, timeout, 429, 5xx):
    back off, honouring Retry-After, and write again."""

    code = "target_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
