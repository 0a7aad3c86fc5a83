"""The money ledger: purchases, refunds, access granted and ended, owned courses, unmatched payments.

Purchase and refund events are committed here through the event writer (``IngestStore.record_purchase`` /
``record_refund`` call :func:`record_purchase` / :func:`record_refund` with the writer's id caches). Payments are
rare, so every write opens its own short transaction (through ``writing`` so SQLite writes are serialised with the
writer's). Functions are synchronous: call them with ``asyncio.to_thread`` from handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.deletion import find_member_id
from storage.engine import writing
from storage.errors import UnknownCourseError, UnknownPurchaseError
from storage.events import MemberRef, PurchaseEvent, RefundEvent
from storage.identities import Identities
from storage.models import (
    Course,
    Member,
    Purchase,
    Refund,
    UnmatchedPayment,
)
from storage.types import bind_time


@dataclass(frozen=True, slots=True)
class UnmatchedRecord:
    """A payment that bought nothing (see ``storage.models.UnmatchedPayment``).

    Attributes:
        id: Its row id (confirmation buttons name it by this, to stay within Telegram's 64 bytes).
        created: This call stored it; False when it was already stored (a redelivery).
        platform: Where it was paid.
        charge_id: The platform's charge id.
        payer_user_id: Who paid (None once they were forgotten: then nobody can be refunded).
        amount: The amount (whole Stars for XTR).
        currency: Its currency.
        received_at: When the payment arrived.
        problem: Why it bought nothing.
        refunded_at: When the money went back, if it did.
    """

    id: int
    created: bool
    platform: str
    charge_id: str
    payer_user_id: str | None
    amount: int
    currency: str
    received_at: datetime
    problem: str
    refunded_at: datetime | None


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def ensure_member(conn: Connection, community_id: int, platform: str, user_id: str, *, now: datetime) -> int:
    """The id of the member ``(platform, user_id)``, added (first seen ``now``) when money arrives before any message.

    Shared by every record of money: purchases, refunds and subscription periods.
    """
    conn.execute(
        _insert(conn)(Member)
        .values(
            community_id=community_id,
            platform=platform,
            platform_user_id=user_id,
            is_bot=False,
            first_seen_at=now,
            nudges_opt_out=False,
            leaderboard_opt_out=False,
        )
        .on_conflict_do_nothing(index_elements=["community_id", "platform", "platform_user_id"])
    )
    return int(
        conn.execute(
            select(Member.id).where(
                Member.community_id == community_id, Member.platform == platform, Member.platform_user_id == user_id
            )
        ).scalar_one()
    )


def _select_unmatched(conn: Connection, where: ColumnElement[bool], *, created: bool = False) -> UnmatchedRecord | None:
    row = conn.execute(
        select(UnmatchedPayment.__table__, Member.platform_user_id.label("payer_user_id"))
        .outerjoin(Member, Member.id == UnmatchedPayment.member_id)
        .where(where)
    ).first()
    if row is None:
        return None
    return UnmatchedRecord(
        id=int(row.id),
        created=created,
        platform=row.platform,
        charge_id=row.charge_id,
        payer_user_id=row.payer_user_id,
        amount=int(row.amount),
        currency=row.currency,
        received_at=row.received_at,
        problem=row.problem,
        refunded_at=row.refunded_at,
    )


def record_unmatched_payment(
    engine: Engine,
    community_id: int,
    *,
    platform: str,
    charge_id: str,
    payer_user_id: str,
    amount: int,
    currency: str,
    received_at: datetime,
    problem: str,
) -> UnmatchedRecord:
    """Store a payment that bought nothing, once per charge.

    Returns:
        The stored payment; ``created`` is False when the charge was already stored (then nothing changed).
    """
    with writing(engine).begin() as conn:
        member_id = ensure_member(conn, community_id, platform, payer_user_id, now=received_at)
        new_id = conn.execute(
            _insert(conn)(UnmatchedPayment)
            .values(
                community_id=community_id,
                member_id=member_id,
                platform=platform,
                charge_id=charge_id,
                amount=amount,
                currency=currency,
                received_at=received_at,
                problem=problem[:500],
            )
            .on_conflict_do_nothing(index_elements=["platform", "charge_id"])
            .returning(UnmatchedPayment.id)
        ).scalar()
        where = (UnmatchedPayment.platform == platform) & (UnmatchedPayment.charge_id == charge_id)
        record = _select_unmatched(conn, where, created=new_id is not None)
    assert record is not None  # just inserted, or already there
    return record


def unmatched_payment(engine: Engine, community_id: int, platform: str, charge_id: str) -> UnmatchedRecord | None:
    """The payment that bought nothing with this charge id, if one is stored."""
    where = (
        (UnmatchedPayment.community_id == community_id)
        & (UnmatchedPayment.platform == platform)
        & (UnmatchedPayment.charge_id == charge_id)
    )
    with engine.connect() as conn:
        return _select_unmatched(conn, where)


def unmatched_payment_by_id(engine: Engine, community_id: int, payment_id: int) -> UnmatchedRecord | None:
    """The payment that bought nothing with this row id, if it exists in the community."""
    where = (UnmatchedPayment.community_id == community_id) & (UnmatchedPayment.id == payment_id)
    with engine.connect() as conn:
        return _select_unmatched(conn, where)


def mark_unmatched_refunded(engine: Engine, payment_id: int, *, at: datetime, by_user_id: str | None = None) -> bool:
    """Record that the money of a payment that bought nothing went back.

    Returns:
        True when this call recorded it; False when it was already recorded (nothing changed).
    """
    with writing(engine).begin() as conn:
        refunded_by = None
        if by_user_id is not None:
            community_id, platform = conn.execute(
                select(UnmatchedPayment.community_id, UnmatchedPayment.platform).where(
                    UnmatchedPayment.id == payment_id
                )
            ).one()
            refunded_by = ensure_member(conn, int(community_id), str(platform), by_user_id, now=at)
        result = conn.execute(
            update(UnmatchedPayment)
            .where(UnmatchedPayment.id == payment_id, UnmatchedPayment.refunded_at.is_(None))
            .values(refunded_at=at, refunded_by_member_id=refunded_by)
        )
    return bool(result.rowcount)


def end_access(engine: Engine, community_id: int, platform: str, charge_id: str, *, at: datetime) -> bool:
    """Record that a purchase no longer gives access from ``at`` on (it expired; nothing was refunded).

    Returns:
        True when the purchase exists and its end changed; False when it is unknown or already ends then.
    """
    with writing(engine).begin() as conn:
        result = conn.execute(
            update(Purchase)
            .where(
                Purchase.community_id == community_id,
                Purchase.platform == platform,
                Purchase.charge_id == charge_id,
                Purchase.access_ends_at.is_distinct_from(at),
            )
            .values(access_ends_at=at)
        )
    return bool(result.rowcount)


def earlier_live_purchase(
    engine: Engine, community_id: int, purchase_id: int, *, now: datetime
) -> tuple[int, str] | None:
    """Another live purchase of the same course by the same buyer, recorded before this one.

    A buyer who paid twice (two invoices checked out before either was paid) owns the course through the first
    payment; the later one is the duplicate. Ordering by row id makes the choice the same whichever delivery
    asks first, so two payments racing each other never both count as the duplicate.

    Returns:
        (purchase id, charge id) of the earlier purchase, or None when this purchase is the buyer's first.
    """
    with engine.connect() as conn:
        this = conn.execute(
            select(Purchase.member_id, Purchase.course_id, Purchase.platform).where(Purchase.id == purchase_id)
        ).first()
        if this is None or this.member_id is None:
            return None
        row = conn.execute(
            purchases_with_refunds(Purchase.id, Purchase.charge_id)
            .where(
                Purchase.community_id == community_id,
                Purchase.member_id == this.member_id,
                Purchase.course_id == this.course_id,
                Purchase.platform == this.platform,
                Purchase.id < purchase_id,
                Refund.id.is_(None),
                (Purchase.access_ends_at.is_(None)) | (Purchase.access_ends_at > now),
            )
            .order_by(Purchase.id)
            .limit(1)
        ).first()
    return None if row is None else (int(row.id), str(row.charge_id))


@dataclass(frozen=True, slots=True)
class OwnedCourse:
    """A live (not refunded) purchase of a course."""

    purchase_id: int
    course_key: str
    title: str
    platform: str
    charge_id: str
    source: str
    amount: int  # minor units; whole stars for XTR
    currency: str
    purchased_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One purchase with its refund, if any, for revenue figures."""

    purchase_id: int
    course_key: str
    title: str
    member_id: int | None  # None once the buyer was forgotten
    platform: str
    charge_id: str
    source: str
    amount: int  # minor units; whole stars for XTR
    currency: str
    purchased_at: datetime
    refunded_at: datetime | None
    member_user_id: str | None = None
    is_test: bool = False  # a test purchase (Discord test mode): never revenue
    access_ends_at: datetime | None = None  # access ended (or ends) then, without a refund

    def live(self, now: datetime) -> bool:
        """Whether the purchase gives access at ``now``: not refunded, and not ended."""
        return self.refunded_at is None and (self.access_ends_at is None or self.access_ends_at > now)

    @property
    def amount_major(self) -> Decimal:
        """The amount in major units (XTR has no minor unit)."""
        return Decimal(self.amount) if self.currency == "XTR" else Decimal(self.amount) / 100


def purchases_with_refunds(*columns: Any) -> Select[Any]:
    """A select of ``columns`` over purchases, each with its course joined and its refund (if any) outer-joined.

    Args:
        *columns: What to read; the first must be a ``Purchase`` column (the join starts from purchases).

    Returns:
        The select, to be narrowed with ``where``; ``Refund.id.is_(None)`` keeps the purchases not refunded.
    """
    return (
        select(*columns)
        .join(Course, Course.id == Purchase.course_id)
        .outerjoin(Refund, Refund.purchase_id == Purchase.id)
    )


# What an ``OwnedCourse`` is read from; the ledger reads these and more.
_OWNED_COLUMNS = (
    Purchase.id,
    Course.course_key,
    Course.title,
    Purchase.platform,
    Purchase.charge_id,
    Purchase.source,
    Purchase.amount,
    Purchase.currency,
    Purchase.purchased_at,
)


def _owned_query(community_id: int) -> Any:
    return (
        purchases_with_refunds(*_OWNED_COLUMNS)
        .where(Purchase.community_id == community_id, Refund.id.is_(None))
        .order_by(Purchase.purchased_at, Purchase.id)
    )


def _not_ended(now: datetime | None) -> Any:
    at = now or datetime.now(UTC)
    return or_(Purchase.access_ends_at.is_(None), Purchase.access_ends_at > at)


def _owned(row: Any) -> OwnedCourse:
    return OwnedCourse(
        purchase_id=int(row.id),
        course_key=row.course_key,
        title=row.title,
        platform=row.platform,
        charge_id=row.charge_id,
        source=row.source,
        amount=int(row.amount),
        currency=row.currency,
        purchased_at=row.purchased_at,
    )


def owned_by_member(
    conn: Connection, community_id: int, member_id: int, now: datetime | None = None
) -> list[OwnedCourse]:
    """The courses ``member_id`` owns at ``now`` (default: the current time), oldest first, one per course."""
    rows = conn.execute(_owned_query(community_id).where(Purchase.member_id == member_id, _not_ended(now))).all()
    # A course bought twice (a grant after a platform purchase) is owned once: keep the first live purchase.
    seen: dict[str, OwnedCourse] = {}
    for row in rows:
        seen.setdefault(row.course_key, _owned(row))
    return list(seen.values())


def owned_courses(
    engine: Engine, community_id: int, platform: str, user_id: str, *, now: datetime | None = None
) -> list[OwnedCourse]:
    """The courses a member owns at ``now`` (default: the current time), oldest first, one per course.

    Owned means a live purchase: not refunded, and its access not ended (an expired Discord entitlement).
    """
    with engine.connect() as conn:
        member_id = find_member_id(conn, community_id, platform, user_id)
        return [] if member_id is None else owned_by_member(conn, community_id, member_id, now)


def live_purchase(
    engine: Engine, community_id: int, platform: str, user_id: str, course_key: str, *, now: datetime | None = None
) -> OwnedCourse | None:
    """The member's live purchase of a course at ``now`` (default: the current time); None when they do not own it."""
    for owned in owned_courses(engine, community_id, platform, user_id, now=now):
        if owned.course_key == course_key:
            return owned
    return None


def ledger(engine: Engine, community_id: int, *, include_test: bool = False) -> list[LedgerRow]:
    """Every purchase of the community with its refund, oldest first (sales are few; this read stays small).

    Test purchases (Discord test-mode entitlements) are money nobody paid: left out unless ``include_test``, so
    revenue and conversion figures built from this never count them.
    """
    query = (
        purchases_with_refunds(
            *_OWNED_COLUMNS,
            Purchase.member_id,
            Refund.refunded_at,
            Member.platform_user_id,
            Purchase.is_test,
            Purchase.access_ends_at,
        )
        .outerjoin(Member, Member.id == Purchase.member_id)
        .where(Purchase.community_id == community_id)
        .order_by(Purchase.purchased_at, Purchase.id)
    )
    if not include_test:
        query = query.where(Purchase.is_test.is_(False))
    with engine.connect() as conn:
        return [
            LedgerRow(
                purchase_id=int(r.id),
                course_key=r.course_key,
                title=r.title,
                member_id=None if r.member_id is None else int(r.member_id),
                platform=r.platform,
                charge_id=r.charge_id,
                source=r.source,
                amount=int(r.amount),
                currency=r.currency,
                purchased_at=r.purchased_at,
                refunded_at=r.refunded_at,
                member_user_id=r.platform_user_id,
                is_test=bool(r.is_test),
                access_ends_at=r.access_ends_at,
            )
            for r in conn.execute(query)
        ]


def purchase_by_charge(engine: Engine, community_id: int, platform: str, charge_id: str) -> LedgerRow | None:
    """The purchase recorded under a platform charge id, with its refund and buyer, if any."""
    for row in ledger(engine, community_id, include_test=True):
        if row.platform == platform and row.charge_id == charge_id:
            return row
    return None


def access_granted(engine: Engine, purchase_id: int) -> bool:
    """Whether the buyer of this purchase was given access (see ``Purchase.access_granted_at``)."""
    with engine.connect() as conn:
        at = conn.execute(select(Purchase.access_granted_at).where(Purchase.id == purchase_id)).scalar()
    return at is not None


def mark_access_granted(engine: Engine, purchase_id: int, *, at: datetime) -> None:
    """Record that the buyer of this purchase now has access."""
    with writing(engine).begin() as conn:
        conn.execute(update(Purchase).where(Purchase.id == purchase_id).values(access_granted_at=at))


@dataclass(frozen=True, slots=True)
class CourseAccess:
    """Who should and who should not have a course's access on one platform, by platform user id."""

    course: str
    owners: frozenset[str]  # at least one live (not refunded) purchase
    refunded: frozenset[str]  # bought, but no purchase of this course gives access any more (refunded, ended)


def course_access(
    engine: Engine, community_id: int, platform: str, *, now: datetime, include_test: bool = False
) -> dict[str, CourseAccess]:
    """Per course key: the members (platform user ids) who own it at ``now`` and those who no longer do.

    A purchase stops giving access when it is refunded or its access ended (an expired Discord entitlement).
    Test purchases give access only with ``include_test`` (``[discord] grant_test_entitlements``); otherwise their
    buyers count as not owning the course, so a role given for one is taken away.
    """
    owners: dict[str, set[str]] = {}
    bought: dict[str, set[str]] = {}
    for row in ledger(engine, community_id, include_test=True):
        if row.platform != platform or row.member_user_id is None:
            continue  # another platform's sale, or a forgotten buyer (nobody left to give or take access)
        bought.setdefault(row.course_key, set()).add(row.member_user_id)
        if row.live(now) and (include_test or not row.is_test):
            owners.setdefault(row.course_key, set()).add(row.member_user_id)
    return {
        course: CourseAccess(course, frozenset(owners.get(course, set())), frozenset(users - owners.get(course, set())))
        for course, users in bought.items()
    }


@dataclass(frozen=True, slots=True)
class LedgerOutcome:
    """The result of recording a purchase or refund: the row's id and whether this call created it."""

    row_id: int
    created: bool


def record_purchase(writes: Engine, ids: Identities, event: PurchaseEvent) -> LedgerOutcome:
    """Commit a purchase before returning (``IngestStore.record_purchase``). The same charge again: ``created=False``.

    Args:
        writes: The engine to write through (``writing(engine)``).
        ids: The writer's id caches (the buyer and the granting admin are resolved through them).
        event: The purchase.

    Raises:
        UnknownCommunityError: The community is not registered.
        UnknownCourseError: The course is not in the catalog; nothing is stored.
    """
    info = ids.community(event.community)
    platform = event.platform.value
    with writes.begin() as conn:
        course_id = conn.execute(
            select(Course.id).where(Course.community_id == info.id, Course.course_key == event.course_id)
        ).scalar()
        if course_id is None:
            raise UnknownCourseError(event.community, event.course_id)
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        refs = [(info.id, platform, event.member)]
        if event.granted_by is not None:
            refs.append((info.id, platform, MemberRef(event.granted_by)))
        ids.resolve_members(cur, refs, bind_time(event.occurred_at, ids.dialect))
        cur.close()
        member_id = ids.member(info.id, platform, event.member.user_id)
        granted_by = ids.member(info.id, platform, event.granted_by) if event.granted_by else None
        stmt = (
            _insert(conn)(Purchase)
            .values(
                community_id=info.id,
                member_id=member_id,
                course_id=course_id,
                platform=platform,
                charge_id=event.charge_id,
                provider_charge_id=event.provider_charge_id,
                source=event.source.value,
                amount=event.amount,
                currency=event.currency,
                purchased_at=event.occurred_at,
                granted_by_member_id=granted_by,
                is_test=event.is_test,
                access_ends_at=event.access_ends_at,
            )
            .on_conflict_do_nothing(index_elements=["platform", "charge_id"])
            .returning(Purchase.id)
        )
        new_id = conn.execute(stmt).scalar()
        if new_id is not None:
            return LedgerOutcome(int(new_id), created=True)
        existing = conn.execute(
            select(Purchase.id).where(Purchase.platform == platform, Purchase.charge_id == event.charge_id)
        ).scalar_one()
        return LedgerOutcome(int(existing), created=False)


def record_refund(writes: Engine, ids: Identities, event: RefundEvent) -> LedgerOutcome:
    """Commit a refund of a recorded purchase (``IngestStore.record_refund``). Again: ``created=False``.

    Args:
        writes: The engine to write through (``writing(engine)``).
        ids: The writer's id caches (the refunding admin is resolved through them).
        event: The refund.

    Raises:
        UnknownPurchaseError: No purchase with that charge id; nothing is stored.
    """
    info = ids.community(event.community)
    platform = event.platform.value
    with writes.begin() as conn:
        purchase_id = conn.execute(
            select(Purchase.id).where(
                Purchase.community_id == info.id,
                Purchase.platform == platform,
                Purchase.charge_id == event.charge_id,
            )
        ).scalar()
        if purchase_id is None:
            raise UnknownPurchaseError(platform, event.charge_id)
        refunded_by = None
        if event.refunded_by is not None:
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            ids.resolve_members(
                cur,
                [(info.id, platform, MemberRef(event.refunded_by))],
                bind_time(event.occurred_at, ids.dialect),
            )
            cur.close()
            refunded_by = ids.member(info.id, platform, event.refunded_by)
        stmt = (
            _insert(conn)(Refund)
            .values(
                purchase_id=purchase_id,
                refunded_at=event.occurred_at,
                reason=event.reason,
                refunded_by_member_id=refunded_by,
            )
            .on_conflict_do_nothing(index_elements=["purchase_id"])
            .returning(Refund.id)
        )
        new_id = conn.execute(stmt).scalar()
        if new_id is not None:
            return LedgerOutcome(int(new_id), created=True)
        existing = conn.execute(select(Refund.id).where(Refund.purchase_id == purchase_id)).scalar_one()
        return LedgerOutcome(int(existing), created=False)
