"""Opening the store's SQLite connections."""

from __future__ import annotations

from pathlib import Path
import sqlite3
from typing import Final

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
