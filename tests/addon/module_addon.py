"""One add-on process for a whole test module, for tables of many small requests."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib

import pytest_socket


@contextlib.contextmanager
def sockets_lifted() -> Iterator[None]:
    """pytest-socket's block lifted for a module-scoped fixture's set-up: such fixtures
    run before any test's ``socket_enabled``. Every test still asks for that fixture."""
    pytest_socket.enable_socket()
    try:
        yield
    finally:
        pytest_socket.disable_socket(allow_unix_socket=True)
