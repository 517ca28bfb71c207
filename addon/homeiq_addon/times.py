"""Times as the add-on keeps them: integer microseconds since 1970 (UTC).

The one place for the units (no module keeps its own copy of "µs per minute"), for the
ISO 8601 text every answer shows, and for the daily schedules (retention, backups).
Imports nothing of the add-on, so the store can use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import functools
import time
from typing import Final

US_PER_SECOND: Final = 1_000_000
US_PER_MINUTE: Final = 60 * US_PER_SECOND
US_PER_HOUR: Final = 60 * US_PER_MINUTE
US_PER_DAY: Final = 24 * US_PER_HOUR

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LOWEST_US: Final = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_HIGHEST_US: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def now_us() -> int:
    """The current time in microseconds since 1970."""
    return time.time_ns() // 1000


def us_to_iso(us: int) -> str:
    """UTC ISO 8601 with microseconds, e.g. 2026-11-22T10:00:00.123456+00:00.

    Times beyond what a datetime holds (a database of an older version took any year,
    and an offset pushes year 1 or 9999 past the ends) come out as the first or last
    microsecond of the datetime range, so a reader never fails on a stored time.

    Every event an answer shows has one or two of these: the date and hour come from a
    small cache (an answer's events share a few hours), the rest is arithmetic, half
    the time of building a datetime for each.
    """
    hour, rest = divmod(min(max(us, _LOWEST_US), _HIGHEST_US), US_PER_HOUR)
    minute, rest = divmod(rest, US_PER_MINUTE)
    second, micro = divmod(rest, US_PER_SECOND)
    return f"{_hour_prefix(hour)}{minute:02d}:{second:02d}.{micro:06d}+00:00"


@functools.lru_cache(maxsize=1024)
def _hour_prefix(hour: int) -> str:
    """'2026-11-22T10:' for the hour that many hours after 1970 began."""
    return (_EPOCH + timedelta(hours=hour)).isoformat()[:14]


def next_daily(at: str, now: datetime) -> datetime | None:
    """The next local time "HH:MM" after ``now``; None when the schedule is off."""
    try:
        hour, minute = (int(part) for part in at.split(":"))
        candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        return None
    return candidate if candidate > now else candidate + timedelta(days=1)
