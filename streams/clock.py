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
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
