"""Subscriptions: recurring access to monthly courses, one paid period per platform charge.

Every payment of a subscription (the first one and each renewal) is a purchase in the ledger, as a one-time sale
is, and a period here. Recording a period is idempotent by the platform's charge id (Telegram's
``telegram_payment_charge_id``, a Discord period key, a Stripe PaymentIntent id): a renewal delivered twice
extends access once, and a late, older period never moves the end back.

The jobs that act on subscriptions (the renewal reminder, removing a member whose access ran out, the message
saying how to come back) claim their row first (``mark_*`` return False when another run already did), so each
happens once however many processes run them. Functions are synchronous: call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.deletion import find_member_id
from storage.engine import writing
from storage.errors import UnknownCourseError
from storage.ledger import ensure_member
from storage.models import Community, Course, Member, Purchase, Subscription, SubscriptionPeriod


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """A member's subscription to a course, as stored.

    Attributes:
        id: Its row id.
        platform: Where it is paid (``"telegram"``, ``"discord"``).
        subscription_ref: The platform's id for it (what cancelling through the platform takes).
        member_user_id: The member's platform user id.
        course_key: The configured course id.
        title: The course title.
        started_at: When the first period began.
        ends_at: Access is paid up to here.
        cancelled_at: When it was cancelled (access lasts until ``ends_at``), if it was.
        ended_at: When access was taken away after it ran out, if it was.
        reminded_for: The ``ends_at`` a renewal reminder was sent for, if one was.
        comeback_sent_at: When the member was told how to come back, if they were.
        provider: Who bills it when not the platform itself (``"stripe"``); None for Telegram Stars and Discord.
    """

    id: int
    platform: str
    subscription_ref: str
    member_user_id: str
    course_key: str
    title: str
    started_at: datetime
    ends_at: datetime
    cancelled_at: datetime | None
    ended_at: datetime | None
    reminded_for: datetime | None
    comeback_sent_at: datetime | None
    provider: str | None = None

    def active(self, now: datetime) -> bool:
        """Whether the subscription gives access at ``now`` (paid up, not taken away)."""
        return self.ended_at is None and self.ends_at > now


@dataclass(frozen=True, slots=True)
class PeriodOutcome:
    """What recording a paid period did.

    Attributes:
        subscription: The subscription after the period was recorded.
        created: This call stored the period; False for a redelivery (nothing changed).
        renewal: The period renews an existing subscription (False for the first payment).
        was_ended: The subscription had run out and its member lost access before this payment came (they are
            back and need access again).
    """

    subscription: SubscriptionRecord
    created: bool
    renewal: bool
    was_ended: bool = False


# How late a renewal may arrive after the period it renews and still count as on time (member still inside).
RENEWAL_GRACE = timedelta(days=1)


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


_COLUMNS = (
    Subscription.id,
    Subscription.platform,
    Subscription.subscription_ref,
    Member.platform_user_id,
    Course.course_key,
    Course.title,
    Subscription.started_at,
    Subscription.ends_at,
    Subscription.cancelled_at,
    Subscription.ended_at,
    Subscription.reminded_for,
    Subscription.comeback_sent_at,
    Subscription.provider,
)


def _query() -> Any:
    return (
        select(*_COLUMNS)
        .join(Member, Member.id == Subscription.member_id)
        .join(Course, Course.id == Subscription.course_id)
        .order_by(Subscription.ends_at, Subscription.id)
    )


def _record(row: Any) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=int(row.id),
        platform=row.platform,
        subscription_ref=row.subscription_ref,
        member_user_id=row.platform_user_id,
        course_key=row.course_key,
        title=row.title,
        started_at=row.started_at,
        ends_at=row.ends_at,
        cancelled_at=row.cancelled_at,
        ended_at=row.ended_at,
        reminded_for=row.reminded_for,
        comeback_sent_at=row.comeback_sent_at,
        provider=row.provider,
    )


def _one(conn: Connection, subscription_id: int) -> SubscriptionRecord:
    return _record(conn.execute(_query().where(Subscription.id == subscription_id)).one())


def record_period(
    engine: Engine,
    community_id: int,
    *,
    platform: str,
    user_id: str,
    course_key: str,
    charge_id: str,
    starts_at: datetime,
    ends_at: datetime,
    subscription_ref: str | None = None,
    provider: str | None = None,
) -> PeriodOutcome:
    """Store one paid period and extend the member's subscription to its end; once per charge.

    Args:
        engine: The database.
        community_id: The community.
        platform: Where it was paid.
        user_id: The member's platform user id.
        course_key: The configured course id.
        charge_id: The platform's id for this payment (the idempotency key).
        starts_at: When the period starts (the payment time).
        ends_at: When it ends (Telegram's ``subscription_expiration_date``, a Discord subscription's
            ``current_period_end``, a Stripe invoice line's period end).
        subscription_ref: The biller's id for the subscription, when it names one (Discord, Stripe);
            None for a Telegram payment: a renewal extends the member's latest subscription to the course, a first
            payment starts one named by its own charge id.
        provider: Who bills it when not the platform (``"stripe"``: ``subscription_ref`` is Stripe's id); stored
            when the subscription is created.

    Returns:
        The outcome; ``created`` is False when this charge was already recorded (then nothing changed).

    Raises:
        UnknownCourseError: The course is not in the catalog; nothing is stored.
    """
    with writing(engine).begin() as conn:
        course_id = conn.execute(
            select(Course.id).where(Course.community_id == community_id, Course.course_key == course_key)
        ).scalar()
        if course_id is None:
            name = conn.execute(select(Community.name).where(Community.id == community_id)).scalar()
            raise UnknownCourseError(str(name), course_key)
        existing = conn.execute(
            select(SubscriptionPeriod.subscription_id).where(
                SubscriptionPeriod.platform == platform, SubscriptionPeriod.charge_id == charge_id
            )
        ).scalar()
        if existing is not None:
            return PeriodOutcome(_one(conn, int(existing)), created=False, renewal=True)
        member_id = ensure_member(conn, community_id, platform, user_id, now=starts_at)
        mine = select(Subscription.id).where(
            Subscription.community_id == community_id,
            Subscription.platform == platform,
            Subscription.member_id == member_id,
            Subscription.course_id == course_id,
        )
        if subscription_ref is not None:
            found = conn.execute(mine.where(Subscription.subscription_ref == subscription_ref)).scalar()
        else:
            found = conn.execute(mine.order_by(Subscription.ends_at.desc(), Subscription.id.desc()).limit(1)).scalar()
        renewal = found is not None
        if found is None:
            found = conn.execute(
                _insert(conn)(Subscription)
                .values(
                    community_id=community_id,
                    member_id=member_id,
                    course_id=course_id,
                    platform=platform,
                    subscription_ref=subscription_ref or charge_id,
                    provider=provider,
                    started_at=starts_at,
                    ends_at=ends_at,
                )
                .returning(Subscription.id)
            ).scalar_one()
        subscription_id = int(found)
        inserted = conn.execute(
            _insert(conn)(SubscriptionPeriod)
            .values(
                subscription_id=subscription_id,
                member_id=member_id,
                platform=platform,
                charge_id=charge_id,
                starts_at=starts_at,
                ends_at=ends_at,
            )
            .on_conflict_do_nothing(index_elements=["platform", "charge_id"])
            .returning(SubscriptionPeriod.id)
        ).scalar()
        if inserted is None:  # another process stored the same charge in the meantime
            return PeriodOutcome(_one(conn, subscription_id), created=False, renewal=renewal)
        before = _one(conn, subscription_id)
        # Lapsed: access was taken away, or had run out well before this payment (a renewal charged after a refund
        # ended the subscription early). A renewal charged on time arrives within minutes of the old end.
        was_ended = renewal and (before.ended_at is not None or before.ends_at < starts_at - RENEWAL_GRACE)
        # A renewal moves the end on (never back: an old period delivered late must not shorten access). Paying
        # again means the member is back: it undoes an earlier ending and the cancellation the renewal overrides.
        conn.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id, Subscription.ends_at < ends_at)
            .values(ends_at=ends_at, ended_at=None, comeback_sent_at=None, cancelled_at=None)
        )
        return PeriodOutcome(_one(conn, subscription_id), created=True, renewal=renewal, was_ended=was_ended)


def end_subscription_at(engine: Engine, community_id: int, platform: str, subscription_ref: str, at: datetime) -> bool:
    """Move a subscription's end to ``at`` (a platform ended it early: an entitlement deleted, a refund).

    Returns:
        True when the end moved; False for an unknown subscription or one that already ends then or earlier.
    """
    with writing(engine).begin() as conn:
        result = conn.execute(
            update(Subscription)
            .where(
                Subscription.community_id == community_id,
                Subscription.platform == platform,
                Subscription.subscription_ref == subscription_ref,
                Subscription.ends_at > at,
            )
            .values(ends_at=at)
        )
    return bool(result.rowcount)


def set_cancelled(engine: Engine, community_id: int, platform: str, subscription_ref: str, at: datetime | None) -> bool:
    """Record that a subscription was cancelled at ``at`` (no more renewals), or resumed (``at`` None).

    Returns:
        True when this changed it; False for an unknown subscription or one already in that state.
    """
    with writing(engine).begin() as conn:
        mine = (
            (Subscription.community_id == community_id)
            & (Subscription.platform == platform)
            & (Subscription.subscription_ref == subscription_ref)
        )
        state = Subscription.cancelled_at.is_(None) if at is not None else Subscription.cancelled_at.is_not(None)
        result = conn.execute(update(Subscription).where(mine, state).values(cancelled_at=at))
    return bool(result.rowcount)


def member_subscriptions(engine: Engine, community_id: int, platform: str, user_id: str) -> list[SubscriptionRecord]:
    """A member's subscriptions on one platform, the soonest to end first."""
    with engine.connect() as conn:
        member_id = find_member_id(conn, community_id, platform, user_id)
        if member_id is None:
            return []
        rows = conn.execute(_query().where(Subscription.member_id == member_id)).all()
    return [_record(row) for row in rows]


def subscription_of_charge(
    engine: Engine, community_id: int, platform: str, charge_id: str
) -> SubscriptionRecord | None:
    """The subscription a paid period (by the platform's charge id) belongs to, if the charge was a subscription's."""
    with engine.connect() as conn:
        row = conn.execute(
            _query()
            .join(SubscriptionPeriod, SubscriptionPeriod.subscription_id == Subscription.id)
            .where(
                Subscription.community_id == community_id,
                SubscriptionPeriod.platform == platform,
                SubscriptionPeriod.charge_id == charge_id,
            )
        ).first()
    return None if row is None else _record(row)


def subscription_by_ref(
    engine: Engine, community_id: int, platform: str, subscription_ref: str
) -> SubscriptionRecord | None:
    """The subscription the platform calls ``subscription_ref``, if it is stored."""
    return _find(engine, community_id, Subscription.platform == platform, subscription_ref)


def _find(engine: Engine, community_id: int, biller: Any, subscription_ref: str) -> SubscriptionRecord | None:
    with engine.connect() as conn:
        row = conn.execute(
            _query().where(
                Subscription.community_id == community_id,
                biller,
                Subscription.subscription_ref == subscription_ref,
            )
        ).first()
    return None if row is None else _record(row)


def due_reminders(
    engine: Engine, community_id: int, platform: str, *, now: datetime, within: timedelta
) -> list[SubscriptionRecord]:
    """Subscriptions ending within ``within`` of ``now``, not cancelled, not yet reminded for this period."""
    with engine.connect() as conn:
        rows = conn.execute(
            _query().where(
                Subscription.community_id == community_id,
                Subscription.platform == platform,
                Subscription.ends_at > now,
                Subscription.ends_at <= now + within,
                Subscription.cancelled_at.is_(None),
                Subscription.ended_at.is_(None),
                Subscription.reminded_for.is_distinct_from(Subscription.ends_at),
            )
        ).all()
    return [_record(row) for row in rows]


def mark_reminded(engine: Engine, subscription_id: int, ends_at: datetime) -> bool:
    """Claim the renewal reminder for the period ending at ``ends_at``; False when it was already claimed."""
    with writing(engine).begin() as conn:
        result = conn.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription_id,
                Subscription.ends_at == ends_at,
                Subscription.reminded_for.is_distinct_from(ends_at),
            )
            .values(reminded_for=ends_at)
        )
    return bool(result.rowcount)


def expired(engine: Engine, community_id: int, platform: str, *, now: datetime) -> list[SubscriptionRecord]:
    """Subscriptions whose paid time ran out by ``now`` and whose member still has to be removed.

    A card subscription (Stripe) that was not cancelled gets :data:`RENEWAL_GRACE` more: Stripe charges a renewal
    about an hour after the period ends, and says so when it gives up (``customer.subscription.deleted``).
    """
    with engine.connect() as conn:
        rows = conn.execute(
            _query().where(
                Subscription.community_id == community_id,
                Subscription.platform == platform,
                Subscription.ends_at <= now,
                Subscription.ended_at.is_(None),
                or_(
                    Subscription.provider.is_(None),
                    Subscription.cancelled_at.is_not(None),
                    Subscription.ends_at <= now - RENEWAL_GRACE,
                ),
            )
        ).all()
    return [_record(row) for row in rows]


def mark_ended(engine: Engine, subscription_id: int, *, at: datetime) -> bool:
    """Record that the member lost access at ``at``; False when it was recorded already or a renewal came first."""
    with writing(engine).begin() as conn:
        result = conn.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id, Subscription.ended_at.is_(None), Subscription.ends_at <= at)
            .values(ended_at=at)
        )
    return bool(result.rowcount)


def mark_comeback_sent(engine: Engine, subscription_id: int, *, at: datetime) -> bool:
    """Claim the "how to come back" message for an ended subscription; False when it was already claimed."""
    with writing(engine).begin() as conn:
        result = conn.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription_id,
                Subscription.ended_at.is_not(None),
                Subscription.comeback_sent_at.is_(None),
            )
            .values(comeback_sent_at=at)
        )
    return bool(result.rowcount)


def billed_subscription(
    engine: Engine, community_id: int, provider: str, subscription_ref: str
) -> SubscriptionRecord | None:
    """The subscription a card provider (Stripe) calls ``subscription_ref``, whichever platform it gives access on."""
    return _find(engine, community_id, Subscription.provider == provider, subscription_ref)


def end_period_purchases_at(
    engine: Engine, community_id: int, platform: str, subscription_ref: str, at: datetime
) -> int:
    """End the access of every purchase paid for one of a subscription's periods at ``at``, where it lasts longer.

    A platform that ends a subscription early (a Discord entitlement that ends or is refunded mid-period) ends the
    access its renewal payments would still give: otherwise the daily reconciliation would keep (or give back) the
    role until the last paid period runs out. An end already earlier than ``at`` is never moved later.

    Returns:
        How many purchases changed.
    """
    with writing(engine).begin() as conn:
        charges = (
            select(SubscriptionPeriod.charge_id)
            .join(Subscription, Subscription.id == SubscriptionPeriod.subscription_id)
            .where(
                Subscription.community_id == community_id,
                Subscription.platform == platform,
                Subscription.subscription_ref == subscription_ref,
            )
        )
        result = conn.execute(
            update(Purchase)
            .where(
                Purchase.community_id == community_id,
                Purchase.platform == platform,
                Purchase.charge_id.in_(charges),
                or_(Purchase.access_ends_at.is_(None), Purchase.access_ends_at > at),
            )
            .values(access_ends_at=at)
        )
    return int(result.rowcount or 0)
