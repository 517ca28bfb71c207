"""The outbox's reads and commits, each run on a store connection (``Store.read``/``write``).

Reads build the lines in the reader's thread: a backfill chunk's line protocol is CPU
work that would otherwise hold the event loop, and with it ingest, for tens of ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
import sqlite3
from typing import Any, Final

import orjson

from ..store import mirror_outbox, rollup_rows
from ..store.rollup_rows import Agg
from ..times import US_PER_DAY, US_PER_HOUR
from .points import InvalidEvent, Rollup, event_lines, rollup_lines
from .writer import Refused

_EVENT_COLUMNS: Final = (
    "id, time_fired, event_type, entity_id, domain, state, old_state, numeric_value,"
    " prev_state_seconds, attributes, data, area, floor, device_class, unit, cause, cause_name"
)
_PERIODS: Final = {"hour": US_PER_HOUR, "day": US_PER_DAY}  # microseconds per unit
SCAN_START: Final = '["hour", -1, -1]'
_NO_END: Final = 1 << 62


def _split(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Selection:
    """A target's include/exclude filters: domains, and entity_id globs (fnmatch)."""

    include_domains: frozenset[str] = frozenset()
    exclude_domains: frozenset[str] = frozenset()
    include_entities: frozenset[str] = frozenset()
    exclude_entities: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Selection:
        keys = ("include_domains", "exclude_domains", "include_entities", "exclude_entities")
        return cls(*(_split(options[key]) for key in keys))

    @property
    def everything(self) -> bool:
        """No filter: every event is taken."""
        return not (
            self.include_domains
            or self.exclude_domains
            or self.include_entities
            or self.exclude_entities
        )

    def takes(self, entity_id: str | None, domain: str | None) -> bool:
        """With includes, an event passes when its domain or its entity is included;
        then excludes remove. Events of no entity (service calls…) match by domain."""
        if domain is None and entity_id:
            domain = entity_id.partition(".")[0]
        if (self.include_domains or self.include_entities) and not (
            domain in self.include_domains
            or (entity_id and any(fnmatchcase(entity_id, g) for g in self.include_entities))
        ):
            return False
        if domain in self.exclude_domains:
            return False
        return not (entity_id and any(fnmatchcase(entity_id, g) for g in self.exclude_entities))


@dataclass(slots=True)
class Chunk:
    """Lines of the events (or rollups) after a cursor, and where the cursor goes next."""

    lines: list[str] = field(default_factory=list)
    read: int = 0
    next_cursor: int = 0
    next_scan: str | None = None


def read_events(
    conn: sqlite3.Connection,
    *,
    after: int,
    upto: int | None,
    limit: int,
    selection: Selection,
    strings: bool,
) -> Chunk:
    """The lines of the events after ``after`` (up to ``upto``), filtered."""
    chunk = Chunk(next_cursor=after)
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events_enriched WHERE id > ? AND id <= ?"
        " ORDER BY id LIMIT ?",
        (after, _NO_END if upto is None else upto, limit),
    ).fetchall()
    everything = selection.everything
    for row in rows:
        if not (everything or selection.takes(row[3], row[4])):
            continue
        # The JSON columns as stored: event_lines remembers the fields of each text.
        event: dict[str, Any] = {
            "event_type": row[2], "entity_id": row[3], "domain": row[4], "state": row[5],
            "old_state": row[6], "numeric_value": row[7], "prev_state_seconds": row[8],
            "attributes": row[9], "data": row[10], "area": row[11], "floor": row[12],
            "device_class": row[13], "unit": row[14], "cause": row[15], "cause_name": row[16],
        }  # fmt: skip
        try:
            chunk.lines += event_lines(event, strings=strings, time_us=row[1])
        except InvalidEvent:
            continue  # stored events always have both; nothing to write for one that lacks
    if rows:
        chunk.next_cursor = rows[-1][0]
    chunk.read = len(rows)
    return chunk


def _rollup(period: str, entity_id: str, start: int, agg: Agg) -> Rollup:
    return Rollup(
        entity_id=entity_id,
        period="hour" if period == "hour" else "day",
        start_us=start * _PERIODS[period],
        count=agg.count,
        min=agg.min,
        max=agg.max,
        sum=agg.sum,
        events=agg.events,
        transitions=agg.transitions,
        time_in_state=agg.time_in_state,
    )


def read_rollup_changes(
    conn: sqlite3.Connection, after: int, limit: int, selection: Selection
) -> Chunk:
    """The rollup rows written since change ``after``; a row purged since is skipped."""
    chunk = Chunk(next_cursor=after)
    changes = conn.execute(
        "SELECT c.id, c.period, c.entity_id, c.start, e.id FROM mirror_rollup_changes c"
        " LEFT JOIN entities e ON e.entity_id = c.entity_id WHERE c.id > ?"
        " ORDER BY c.id LIMIT ?",
        (after, limit),
    ).fetchall()
    for change_id, period, entity_id, start, ref in changes:
        chunk.next_cursor = change_id
        if ref is None or not selection.takes(entity_id, None):
            continue
        if period == "hour":
            agg = rollup_rows.read_hours(conn, ref, start // 24).get(start % 24)
        else:
            agg = rollup_rows.read_day(conn, ref, start)
        if agg is not None:
            chunk.lines += rollup_lines(_rollup(period, entity_id, start, agg))
    chunk.read = len(changes)
    return chunk


def read_rollup_scan(
    conn: sqlite3.Connection, scan: str, limit: int, selection: Selection
) -> Chunk:
    """A backfill's next stored rollups, hours then days, from the position ``scan``:
    [period, entity ref, day] (a position of another form starts the period over). The
    day is the last one sent: an hourly row's day, or the last day sent of a daily row
    (which holds 32 days)."""
    period, ref, day = orjson.loads(scan)
    if not isinstance(day, int):
        ref, day = -1, -1
    tier = rollup_rows.HOURLY if period == "hour" else rollup_rows.DAILY
    # The first row not wholly sent: the next day's row, or the next hourly row.
    first = (ref, (day + 1) // tier.per_row) if period == "day" else (ref, day + 1)
    # About ``limit`` rollups per chunk, whatever a row holds.
    rows_limit = max(1, limit // tier.per_row)
    rows = conn.execute(
        f"SELECT r.entity_ref, r.{tier.row_column}, r.{tier.blob_column}, e.entity_id"
        f" FROM {tier.table} r JOIN entities e ON e.id = r.entity_ref"
        f" WHERE (r.entity_ref, r.{tier.row_column}) >= (?, ?)"
        f" ORDER BY r.entity_ref, r.{tier.row_column} LIMIT ?",
        (*first, rows_limit),
    ).fetchall()
    chunk = Chunk(read=len(rows))
    last = (ref, day)
    for row_ref, row, blob, entity_id in rows:
        start = row * tier.per_row
        periods = sorted(rollup_rows.unpack(tier, blob).items())
        if period == "day":
            periods = [(p, agg) for p, agg in periods if (row_ref, start + p) > (ref, day)]
            last = (row_ref, start + tier.per_row - 1)
        else:
            last = (row_ref, row)
        if not selection.takes(entity_id, None):
            continue
        for place, agg in periods:
            chunk.lines += rollup_lines(_rollup(period, entity_id, start + place, agg))
    if len(rows) == rows_limit:
        chunk.next_scan = orjson.dumps([period, *last]).decode()
    elif period == "hour":
        chunk.next_scan = '["day", -1, -1]'
    return chunk


def rollup_changes_top(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM mirror_rollup_changes").fetchone()[0])


def sync_targets(
    conn: sqlite3.Connection,
    configured: dict[str, tuple[bool, bool, bool]],
    max_lag_us: int,
    rollups_kept_after: int | None = None,
) -> None:
    """Make ``mirror_targets`` say what the options say: ``configured`` maps a name to
    (enabled, wants events, wants rollups). A new target sends new events at once and
    backfills the stored ones beside them; one no longer configured stops holding
    retention."""
    top = mirror_outbox.top_event_id(conn)
    changes_top = rollup_changes_top(conn)
    rows = mirror_outbox.target_rows(conn)
    for name, (enabled, events, rollups) in configured.items():
        row = rows.get(name)
        wants = enabled and rollups
        if row is None:
            conn.execute(
                "INSERT INTO mirror_targets"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, NULL, NULL)",
                (name, enabled, events, wants, max_lag_us, top, 0 if top else None, top or None,
                 changes_top, SCAN_START if wants else None),
            )  # fmt: skip
            continue
        started = wants and not row["rollups"]
        conn.execute(
            "UPDATE mirror_targets SET enabled = :enabled, events = :events,"
            " rollups = :wants,"
            " max_lag_us = :max_lag_us,"
            " rollup_cursor = CASE WHEN :started THEN :changes_top ELSE rollup_cursor END,"
            " rollup_scan = CASE WHEN :started THEN :scan WHEN :wants THEN rollup_scan END,"
            # Ids are reused once retention deleted the newest events: never ahead of them.
            " event_cursor = MIN(event_cursor, :top),"
            " backfill_until = MIN(backfill_until, :top)"
            " WHERE name = :name",
            {"enabled": enabled, "events": events, "wants": wants, "max_lag_us": max_lag_us,
             "started": started, "changes_top": changes_top, "scan": SCAN_START, "top": top,
             "name": name},
        )  # fmt: skip
    for name in rows.keys() - configured.keys():
        conn.execute("UPDATE mirror_targets SET enabled = 0, rollups = 0 WHERE name = ?", (name,))
    prune_rollup_changes(conn, rollups_kept_after)


def prune_rollup_changes(conn: sqlite3.Connection, kept_after: int | None) -> None:
    """Changes every target that wants rollups has received are of no more use, except
    those after ``kept_after``: a replay (``.replay``) may write them again. That margin
    is what the targets acknowledged in the last minute, so the log holds at most that
    beside what some target has not received."""
    conn.execute(
        "DELETE FROM mirror_rollup_changes WHERE id <= MIN(COALESCE("
        " (SELECT MIN(rollup_cursor) FROM mirror_targets WHERE rollups = 1), 1 << 62), ?)",
        (_NO_END if kept_after is None else kept_after,),
    )


def start_backfill(conn: sqlite3.Connection, name: str) -> None:
    """Every stored event (and rollup) again, beside the live ones."""
    top = mirror_outbox.top_event_id(conn)
    conn.execute(
        "UPDATE mirror_targets SET backfill_cursor = ?, backfill_until = ?,"
        " rollup_scan = CASE WHEN rollups THEN ? END WHERE name = ?",
        (0 if top else None, top or None, SCAN_START, name),
    )


def reload(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """The target's row, its cursors no further than the newest event: once retention
    deleted the newest events, new ones reuse their ids."""
    top = mirror_outbox.top_event_id(conn)
    conn.execute(
        "UPDATE mirror_targets SET event_cursor = MIN(event_cursor, ?1),"
        " backfill_until = MIN(backfill_until, ?1) WHERE name = ?2",
        (top, name),
    )
    return mirror_outbox.target_rows(conn)[name]


def commit_events(
    conn: sqlite3.Connection,
    *,
    name: str,
    backfill: bool,
    cursor: int,
    written: int,
    refused: list[Refused],
    now_us: int,
) -> None:
    """The target has taken (or refused) every line up to event ``cursor`` (of the
    backfill, or live): the last error is over, unless it refused some of them."""
    conn.execute(
        "UPDATE mirror_targets SET points_written = points_written + ?, last_error = NULL,"
        " last_success_us = ? WHERE name = ?",
        (written, now_us, name),
    )
    _move(conn, name, backfill, cursor)
    _set_aside(conn, name, refused, now_us)


def _move(conn: sqlite3.Connection, name: str, backfill: bool, cursor: int) -> None:
    if backfill:
        # At its end the backfill is over: both columns NULL.
        conn.execute(
            "UPDATE mirror_targets SET"
            " backfill_cursor = CASE WHEN ?1 < backfill_until THEN ?1 END,"
            " backfill_until = CASE WHEN ?1 < backfill_until THEN backfill_until END"
            " WHERE name = ?2",
            (cursor, name),
        )
    else:
        conn.execute("UPDATE mirror_targets SET event_cursor = ? WHERE name = ?", (cursor, name))


def commit_rollups(
    conn: sqlite3.Connection,
    *,
    name: str,
    cursor: int,
    scan: str | None,
    written: int,
    refused: list[Refused],
    now_us: int,
    kept_after: int | None,
) -> None:
    conn.execute(
        "UPDATE mirror_targets SET rollup_cursor = ?, rollup_scan = ?,"
        " points_written = points_written + ?, last_error = NULL, last_success_us = ?"
        " WHERE name = ?",
        (cursor, scan, written, now_us, name),
    )
    _set_aside(conn, name, refused, now_us)
    prune_rollup_changes(conn, kept_after)


def rewind(conn: sqlite3.Connection, name: str, backfill: bool, cursor: int) -> None:
    """Back to ``cursor`` after an outage (``.replay``)."""
    _move(conn, name, backfill, cursor)


def rewind_rollups(conn: sqlite3.Connection, name: str, cursor: int, scan: str | None) -> None:
    """The rollups back to change ``cursor`` (and a backfill's ``scan``) after an outage."""
    conn.execute(
        "UPDATE mirror_targets SET rollup_cursor = ?, rollup_scan = ? WHERE name = ?",
        (cursor, scan, name),
    )


def _set_aside(conn: sqlite3.Connection, name: str, refused: list[Refused], now_us: int) -> None:
    if not refused:
        return
    conn.executemany(
        "INSERT INTO mirror_refused (target, refused_us, line, reason) VALUES (?, ?, ?, ?)",
        [(name, now_us, item.line, item.reason) for item in refused],
    )
    conn.execute(
        "UPDATE mirror_targets SET points_refused = points_refused + ?, last_error = ?"
        " WHERE name = ?",
        (len(refused), f"{len(refused)} point(s) refused: {refused[-1].reason}", name),
    )


def record_error(conn: sqlite3.Connection, name: str, message: str | None) -> None:
    conn.execute("UPDATE mirror_targets SET last_error = ? WHERE name = ?", (message, name))


@dataclass(frozen=True, slots=True)
class Progress:
    """One target's row and its lag, as the report needs them."""

    row: dict[str, Any]
    lag_events: int
    oldest_unsent_us: int | None
    retention_waits: bool


def progress(conn: sqlite3.Connection, now_us: int) -> dict[str, Progress]:
    top = mirror_outbox.top_event_id(conn)
    found = {}
    for name, row in mirror_outbox.target_rows(conn).items():
        # A target of rollups only has no events to wait for.
        cursor = mirror_outbox.received_upto(row) if row["events"] else top
        found[name] = Progress(
            row=row,
            lag_events=mirror_outbox.unsent_events(conn, cursor, top) if top > cursor else 0,
            oldest_unsent_us=mirror_outbox.oldest_unsent_us(conn, cursor),
            retention_waits=mirror_outbox.holds_upto(conn, row, now_us) is not None,
        )
    return found
