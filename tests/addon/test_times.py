"""The ISO text every answer shows for a stored time (times.us_to_iso)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import random

import pytest

from homeiq_addon.times import US_PER_HOUR, us_to_iso

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_FIRST_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _ONE_US
_LAST_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _ONE_US


def _expected(us: int) -> str:
    """The datetime's own ISO text, of the time clamped to the range a datetime holds."""
    clamped = min(max(us, _FIRST_US), _LAST_US)
    return (_EPOCH + clamped * _ONE_US).isoformat(timespec="microseconds")


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00.000000+00:00"),
        (-1, "1969-12-31T23:59:59.999999+00:00"),
        (1_795_775_400_123_456, "2026-11-27T10:30:00.123456+00:00"),
        (US_PER_HOUR - 1, "1970-01-01T00:59:59.999999+00:00"),
        # Beyond what a datetime holds: its first or last microsecond, never an error.
        (-(10**20), "0001-01-01T00:00:00.000000+00:00"),
        (10**20, "9999-12-31T23:59:59.999999+00:00"),
    ],
)
def test_a_stored_time_reads_as_its_iso_text(us: int, text: str) -> None:
    assert us_to_iso(us) == text


def test_every_time_reads_as_the_datetime_would_write_it() -> None:
    """Random times over the whole range and around hour boundaries, years 1 to 9999."""
    rng = random.Random(15)
    times = [rng.randrange(_FIRST_US, _LAST_US + 1) for _ in range(20_000)]
    times += [h * US_PER_HOUR + d for h in range(-3, 3) for d in (-1, 0, 1)]
    times += [_FIRST_US, _FIRST_US + 1, _LAST_US - 1, _LAST_US]
    assert [us_to_iso(us) for us in times] == [_expected(us) for us in times]
