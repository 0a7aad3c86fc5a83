"""Local-day bucketing of UTC instants in a community's time zone, fast enough for the ingestion hot path."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from storage.types import to_millis

# Every UTC offset in use is a multiple of 15 minutes, so all instants in one 15-minute slot share a local day and
# a local hour.
_SLOT_MS = 15 * 60 * 1000


class LocalDays:
    """Maps instants to the local calendar day (and hour) of one time zone, memoised per 15-minute slot."""

    __slots__ = ("_cache", "_hours", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        """Create a mapper for ``tz``."""
        self.tz = tz
        self._cache: dict[int, date] = {}
        self._hours: dict[int, tuple[date, int]] = {}

    def day(self, instant: datetime) -> date:
        """The local date of an aware instant."""
        slot = to_millis(instant) // _SLOT_MS
        found = self._cache.get(slot)
        if found is None:
            found = instant.astimezone(self.tz).date()
            self._cache[slot] = found
        return found

    def day_of_millis(self, millis: int) -> date:
        """The local date of an instant given as epoch milliseconds."""
        slot = millis // _SLOT_MS
        found = self._cache.get(slot)
        if found is None:
            found = datetime.fromtimestamp(millis / 1000, UTC).astimezone(self.tz).date()
            self._cache[slot] = found
        return found

    def day_hour(self, instant: datetime) -> tuple[date, int]:
        """The local date and local hour (0-23, wall clock) of an aware instant."""
        return self.day_hour_of_millis(to_millis(instant))

    def day_hour_of_millis(self, millis: int) -> tuple[date, int]:
        """The local date and local hour (0-23, wall clock) of an instant given as epoch milliseconds.

        On the day clocks go back, the repeated hour's two real hours share one local hour; on the day they go
        forward, the skipped hour has none.
        """
        slot = millis // _SLOT_MS
        found = self._hours.get(slot)
        if found is None:
            local = datetime.fromtimestamp(millis / 1000, UTC).astimezone(self.tz)
            found = (local.date(), local.hour)
            self._hours[slot] = found
        return found
