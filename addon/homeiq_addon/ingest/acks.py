"""What the ingest answers: an accepted batch, or one refused for its content."""

from __future__ import annotations

from dataclasses import dataclass, field
import sqlite3
import time
from typing import Any

import orjson


@dataclass(slots=True)
class Ack:
    """What the add-on answers for an accepted (or already accepted) batch."""

    batch_id: str
    accepted: int
    duplicate: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    # Set instead of ``events`` by the fast path, which builds no dicts: the live stream
    # decodes the body again only when someone listens (``events_for_stream``).
    body: bytes | None = None

    def events_for_stream(self, listening: bool) -> list[dict[str, Any]]:
        if self.body is None or not listening:
            return self.events
        events: list[dict[str, Any]] = orjson.loads(self.body)["events"]
        return events

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "accepted": self.accepted, "duplicate": self.duplicate}


@dataclass(slots=True)
class Rejected:
    """A batch refused for its content; nothing of it was written."""

    status: int
    code: str
    message: str


def record_reject(conn: sqlite3.Connection, now: float | None = None) -> None:
    minute = int((time.time() if now is None else now) // 60)
    conn.execute(
        "INSERT INTO batch_rejects VALUES (?, 1) ON CONFLICT (minute) DO UPDATE SET n = n + 1",
        (minute,),
    )
