"""What became of a batch: accepted (and what the live stream gets of it), or refused (counted)."""

from __future__ import annotations

from dataclasses import dataclass
import sqlite3
import time
from typing import Any

import orjson

from .. import contract


@dataclass(slots=True)
class Accepted:
    """What the add-on answers for an accepted (or already accepted) batch."""

    batch_id: str
    accepted: int
    duplicate: bool
    # The request body: the live stream decodes it again only when someone listens.
    body: bytes | None = None

    def events_for_stream(self, listening: bool) -> list[dict[str, Any]]:
        if self.body is None or not listening:
            return []
        events: list[dict[str, Any]] = orjson.loads(self.body)["events"]
        return events

    def answer(self) -> contract.Ack:
        """The contract's acknowledgement (the body stays here, for the live stream)."""
        return contract.Ack(self.batch_id, self.accepted, self.duplicate)


def record_reject(conn: sqlite3.Connection, now: float | None = None) -> None:
    """Count a refused batch (for the error-rate alerts)."""
    minute = int((time.time() if now is None else now) // 60)
    conn.execute(
        "INSERT INTO batch_rejects VALUES (?, 1) ON CONFLICT (minute) DO UPDATE SET n = n + 1",
        (minute,),
    )
