"""Opening the store's SQLite connections, and what the writer calls around transactions."""

from __future__ import annotations

from pathlib import Path
import sqlite3
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections import Counter

    from .ids import Key


BUSY_TIMEOUT_MS: Final = 10_000


def connect(path: Path, *, readonly: bool = False, cache_mb: int = 8) -> sqlite3.Connection:
    """Open a connection with the pragmas every connection of the store uses."""
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    # autocommit=True: the module never opens or commits transactions behind our back
    # (not even in executescript); every transaction here is an explicit BEGIN.
    conn = sqlite3.connect(uri, uri=True, autocommit=True, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # FULL syncs the WAL on every commit: an acknowledged batch survives a power cut,
    # not only a crash. Group commit keeps the number of commits (and syncs) low.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA cache_size = -{cache_mb * 1000}")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


class TxHooks(Protocol):
    """Work tied to the writer's transactions (the ingest's deferred counters)."""

    def job_done(self, ok: bool) -> None:
        """A job's savepoint was released (ok) or rolled back (its work is gone)."""

    def before_commit(self, conn: sqlite3.Connection) -> None: ...

    def after_commit(self) -> None: ...

    def after_rollback(self) -> None: ...

    def clear_caches(self) -> None:
        """Cached row ids may point at rows gone: after any rollback (also of one job's
        savepoint), a restore, or a cleanup that deleted rows (``Store.forget_row_ids``)."""

    def settled(self, position: tuple[int, int]) -> None:
        """The newest events were settled (deferred_index.py); ``position`` names what is."""

    def unsettled_since(self, position: tuple[int, int]) -> Counter[Key] | None:
        """Counts by minute key of the events committed since ``position``, if known."""
