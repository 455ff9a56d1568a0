"""Event time: the city's local day of a UTC millisecond timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

CITY_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@lru_cache(maxsize=65536)
def _day_of_hour(hour: int) -> str:
    moment = datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(CITY_TZ)
    return moment.date().isoformat()


def local_day(ms: int) -> str:
    """ISO date of ``ms`` in Asia/Ho_Chi_Minh; cached per hour since zones shift on hours."""
    return _day_of_hour(ms // HOUR_MS)


def iso_utc(ms: int) -> str:
    """``2024-06-01T01:00:00.000Z``: the one time format of every API answer.

    Always milliseconds (the events' precision), computed in integers so a time
    never gains a float's rounding or changes width with its value.
    """
    seconds, millis = divmod(int(ms), 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=millis * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
