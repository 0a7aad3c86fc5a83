"""Ledger writes outside the event writer: payments that bought nothing, access that ends, duplicate purchases.

Payments are rare, so these open their own short transaction (through ``writing`` so SQLite writes are serialised
with the writer's). Functions are synchronous: call them with ``asyncio.to_thread`` from handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import writing
from storage.models import Course, Member, Purchase, Refund, UnmatchedPayment


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


def _member_id(conn: Connection, community_id: int, platform: str, user_id: str, *, now: datetime) -> int:
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
        member_id = _member_id(conn, community_id, platform, payer_user_id, now=received_at)
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
            refunded_by = _member_id(conn, int(community_id), str(platform), by_user_id, now=at)
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
            select(Purchase.id, Purchase.charge_id)
            .join(Course, Course.id == Purchase.course_id)
            .outerjoin(Refund, Refund.purchase_id == Purchase.id)
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
