"""Column types shared by the models.

Timestamps are UTC-aware everywhere in cohortbot. PostgreSQL keeps them as ``timestamptz``; SQLite has no
time type, and its text form (26 bytes) would dominate the size of an event row, so there they are stored as
integer milliseconds since the epoch (6 bytes). Both backends keep millisecond precision, which is what the
platforms deliver, so an idempotency key that includes a timestamp means the same thing on either.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact integer arithmetic, no float rounding)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(value: int) -> datetime:
    """The aware UTC datetime for milliseconds since the epoch."""
    return _EPOCH + timedelta(milliseconds=value)


def truncate_to_millis(value: datetime) -> datetime:
    """Drop sub-millisecond precision so both backends agree on stored instants."""
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime; naive datetimes are refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Pick the storage type: integer milliseconds on SQLite, ``timestamptz`` elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Validate and convert a datetime for the database."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where a UTC-aware one is required")
        if dialect.name == "sqlite":
            return to_millis(value)
        return truncate_to_millis(value.astimezone(UTC))

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Convert a stored value back to an aware UTC datetime."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_millis(int(value))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


def bind_time(value: datetime, dialect_name: str) -> object:
    """The driver-level parameter for a timestamp, for the raw SQL of the ingestion hot path."""
    if dialect_name == "sqlite":
        return to_millis(value)
    return truncate_to_millis(value)


def bind_day(value: date, dialect_name: str) -> object:
    """The driver-level parameter for a ``Date`` column (SQLAlchemy stores ISO text on SQLite)."""
    if dialect_name == "sqlite":
        return value.isoformat()
    return value


def read_time(value: object, dialect_name: str) -> datetime:
    """Convert a raw driver value of a UTCDateTime column back to an aware datetime."""
    if dialect_name == "sqlite":
        return from_millis(int(value))  # type: ignore[call-overload]
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def read_day(value: object) -> date:
    """Convert a raw driver value of a ``Date`` column to a date."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
