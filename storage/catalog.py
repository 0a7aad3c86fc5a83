"""The course catalog in the database, kept in step with ``[[courses]]`` in the config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import writing
from storage.models import Course


@dataclass(frozen=True, slots=True)
class CourseRecord:
    """A course as storage needs it (the config's ``[[courses]]`` entry, minus platform wiring)."""

    key: str
    title: str
    price_stars: int | None = None
    price: Decimal | None = None
    currency: str | None = None


def sync_courses(engine: Engine, community_id: int, courses: Sequence[CourseRecord]) -> None:
    """Upsert the configured courses; courses no longer configured stay (for sales history) but go inactive."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with writing(engine).begin() as conn:
        for course in courses:
            values = {
                "title": course.title,
                "price_stars": course.price_stars,
                "price": course.price,
                "currency": course.currency,
                "active": True,
            }
            stmt = insert(Course).values(community_id=community_id, course_key=course.key, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["community_id", "course_key"], set_=values))
        keys = [c.key for c in courses]
        conn.execute(
            update(Course)
            .where(Course.community_id == community_id, Course.course_key.not_in(keys))
            .values(active=False)
        )


def list_courses(engine: Engine, community_id: int, *, include_inactive: bool = False) -> list[CourseRecord]:
    """The catalog of a community, active courses only unless asked."""
    query = select(Course).where(Course.community_id == community_id).order_by(Course.course_key)
    if not include_inactive:
        query = query.where(Course.active.is_(True))
    with engine.connect() as conn:
        return [CourseRecord(r.course_key, r.title, r.price_stars, r.price, r.currency) for r in conn.execute(query)]
