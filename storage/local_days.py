"""Local-day bucketing of UTC instants in a community's time zone, fast enough for the ingestion hot path."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from storage.types import to_millis

# Every UTC offset in use is a multiple of 15 minutes, so all instants in one 15-minute slot share a local day and
# a local hour.
_SLOT_MS = 15 * 60 * 1000


class LocalDays:
    """Maps instants to the local calendar day (and hour) of one time zone, memoised per 15-minute slot."""

    __slots__ = ("_cache", "_hours", "_offsets", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        """Create a mapper for ``tz``."""
        self.tz = tz
        self._cache: dict[int, date] = {}
        self._hours: dict[int, tuple[date, int]] = {}
        self._offsets: dict[int, int] = {}

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

    def offset_runs(self, millis: Iterable[int]) -> list[tuple[int, int]]:
        """The UTC offsets (in milliseconds) in force at the given instants, as runs over time.

        Returns ``[(start, offset), ...]`` sorted by ``start`` (epoch milliseconds, a 15-minute-slot boundary):
        each instant of ``millis`` has the offset of the last run starting at or before it. The first run starts
        at the earliest instant's slot. Adjacent slots with the same offset share a run, so a batch of events
        that does not straddle a clock change has exactly one. Local wall-clock time is then ``instant +
        offset``, which is what lets SQL compute local days and hours of stored rows (see
        ``storage.rollups.apply_message_rollups``).
        """
        offsets = self._offsets
        runs: list[tuple[int, int]] = []
        for slot in sorted({m // _SLOT_MS for m in millis}):
            offset = offsets.get(slot)
            if offset is None:
                start = datetime.fromtimestamp(slot * _SLOT_MS / 1000, UTC).astimezone(self.tz)
                delta = start.utcoffset()
                offset = offsets[slot] = 0 if delta is None else int(delta.total_seconds() * 1000)
            if not runs or runs[-1][1] != offset:
                runs.append((slot * _SLOT_MS, offset))
        return runs
