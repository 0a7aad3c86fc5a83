"""Outside checkouts (Stripe, the generic webhook): handled webhook events and one-time claim codes.

A webhook event is applied once by its provider's event id: :func:`take_webhook_event` inserts it under a unique
``(provider, event_id)`` before anything is applied, so a replay, a redelivery or a second process receiving the
same event learns that it was handled (or is being handled: it is told to come back later), and
:func:`finish_webhook_event` marks it applied. A delivery that died half-way leaves a lease that goes stale and is
taken over. A claim marks its event handled in the same transaction (:func:`create_claim`). Claim codes are stored
as SHA-256 only, and redeeming one is a single ``UPDATE ... WHERE claimed_at IS NULL``, so a code attaches its
purchase to one account, once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage.engine import writing
from storage.models import CheckoutClaim, Member, WebhookEvent, table_of

CLAIM_CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen, typed by hand


def _events() -> Table:
    return table_of(WebhookEvent)


def _claims() -> Table:
    return table_of(CheckoutClaim)


def normalise_code(code: str) -> str:
    """A claim code as typed (any case, dashes, spaces) reduced to its letters and digits, upper case."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def hash_code(code: str) -> str:
    """The SHA-256 of a (normalised) claim code, as stored."""
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """A stored claim: a paid checkout waiting for (or attached to) a chat account."""

    id: int
    provider: str
    session_id: str
    charge_id: str
    course_key: str
    amount: int
    currency: str
    paid_at: datetime
    expires_at: datetime
    claimed_at: datetime | None
    refunded_at: datetime | None


EventState = Literal["taken", "handled", "busy"]
# How long a delivery may hold an event before another delivery may take it over (it crashed, or hangs). Applying
# an event takes well under a second; Stripe waits minutes to hours before it retries a failed delivery.
WEBHOOK_LEASE: Final = timedelta(minutes=2)


def take_webhook_event(
    engine: Engine,
    community_id: int,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    now: datetime,
    lease: timedelta = WEBHOOK_LEASE,
) -> EventState:
    """Take an event before applying it, so that exactly one delivery applies it (in any process).

    Returns:
        ``"taken"``: this delivery applies it, then calls :func:`finish_webhook_event` (or
        :func:`release_webhook_event` when it failed). ``"handled"``: it was applied already; nothing to do.
        ``"busy"``: another delivery is applying it right now; answer so that the provider delivers again later.
    """
    events = _events()
    mine = (events.c.provider == provider) & (events.c.event_id == event_id)
    try:
        with writing(engine).begin() as conn:
            _insert_event(conn, community_id, provider, event_id, event_type, now)
        return "taken"
    except IntegrityError:
        pass
    with writing(engine).begin() as conn:
        row = conn.execute(select(events.c.received_at, events.c.handled_at).where(mine)).first()
        if row is None:  # released by the other delivery in the meantime: take it now
            _insert_event(conn, community_id, provider, event_id, event_type, now)
            return "taken"
        if row.handled_at is not None:
            return "handled"
        if row.received_at > now - lease:
            return "busy"
        # A stale lease: the delivery that took it is gone. Take it over, unless a third delivery just did.
        taken = conn.execute(
            update(events)
            .where(mine, events.c.handled_at.is_(None), events.c.received_at == row.received_at)
            .values(received_at=now)
        ).rowcount
    return "taken" if taken == 1 else "busy"


def finish_webhook_event(engine: Engine, provider: str, event_id: str, *, at: datetime) -> None:
    """Mark a taken event as applied: every later delivery of it is acknowledged and ignored."""
    with writing(engine).begin() as conn:
        _finish(conn, provider, event_id, at)


def _finish(conn: Connection, provider: str, event_id: str, at: datetime) -> None:
    events = _events()
    conn.execute(
        update(events)
        .where(events.c.provider == provider, events.c.event_id == event_id, events.c.handled_at.is_(None))
        .values(handled_at=at)
    )


def release_webhook_event(engine: Engine, provider: str, event_id: str) -> None:
    """Give a taken event back after applying it failed, so the provider's next delivery applies it at once."""
    events = _events()
    with writing(engine).begin() as conn:
        conn.execute(
            delete(events).where(
                events.c.provider == provider, events.c.event_id == event_id, events.c.handled_at.is_(None)
            )
        )


def webhook_event_handled(engine: Engine, provider: str, event_id: str) -> bool:
    """Whether the event was applied already."""
    events = _events()
    with engine.connect() as conn:
        found = conn.execute(
            select(events.c.id).where(
                events.c.provider == provider, events.c.event_id == event_id, events.c.handled_at.is_not(None)
            )
        ).first()
    return found is not None


def _insert_event(
    conn: Connection, community_id: int, provider: str, event_id: str, event_type: str, at: datetime
) -> None:
    conn.execute(
        insert(_events()).values(
            community_id=community_id, provider=provider, event_id=event_id, event_type=event_type, received_at=at
        )
    )


def create_claim(
    engine: Engine,
    community_id: int,
    *,
    provider: str,
    event_id: str,
    session_id: str,
    code_hash: str,
    charge_id: str,
    course_key: str,
    amount: int,
    currency: str,
    paid_at: datetime,
    expires_at: datetime,
    received_at: datetime,
) -> bool:
    """Store a claim and mark the (taken) event that paid for it handled, in one transaction.

    Returns:
        True when stored; False when a claim for the same checkout was stored already (by another event of the same
        checkout): nothing changed, and the event is left for the caller to finish.
    """
    try:
        with writing(engine).begin() as conn:
            conn.execute(
                insert(_claims()).values(
                    community_id=community_id,
                    provider=provider,
                    session_id=session_id,
                    code_hash=code_hash,
                    charge_id=charge_id,
                    course_key=course_key,
                    amount=amount,
                    currency=currency,
                    paid_at=paid_at,
                    expires_at=expires_at,
                )
            )
            _finish(conn, provider, event_id, received_at)
    except IntegrityError:
        return False
    return True


def _claim_from(row: object) -> Claim:
    c = row._mapping  # type: ignore[attr-defined]
    return Claim(
        id=c["id"],
        provider=c["provider"],
        session_id=c["session_id"],
        charge_id=c["charge_id"],
        course_key=c["course_key"],
        amount=c["amount"],
        currency=c["currency"],
        paid_at=c["paid_at"],
        expires_at=c["expires_at"],
        claimed_at=c["claimed_at"],
        refunded_at=c["refunded_at"],
    )


def claim_by_session(engine: Engine, community_id: int, provider: str, session_id: str) -> Claim | None:
    """The claim made for a checkout session, if any."""
    claims = _claims()
    with engine.connect() as conn:
        row = conn.execute(
            select(claims).where(
                claims.c.community_id == community_id,
                claims.c.provider == provider,
                claims.c.session_id == session_id,
            )
        ).first()
    return None if row is None else _claim_from(row)


def claim_by_code(engine: Engine, community_id: int, code_hash: str) -> Claim | None:
    """The claim with this code (used, expired or refunded ones too), if any."""
    claims = _claims()
    with engine.connect() as conn:
        row = conn.execute(
            select(claims).where(claims.c.community_id == community_id, claims.c.code_hash == code_hash)
        ).first()
    return None if row is None else _claim_from(row)


def redeem_claim(engine: Engine, community_id: int, code_hash: str, now: datetime) -> Claim | None:
    """Take a claim: unused, not refunded and not expired. Only one caller ever gets it.

    Returns:
        The claim, now marked claimed; None when there is no such usable code.
    """
    claims = _claims()
    with writing(engine).begin() as conn:
        taken = conn.execute(
            update(claims)
            .where(
                claims.c.community_id == community_id,
                claims.c.code_hash == code_hash,
                claims.c.claimed_at.is_(None),
                claims.c.refunded_at.is_(None),
                claims.c.expires_at > now,
            )
            .values(claimed_at=now)
        ).rowcount
        if taken != 1:
            return None
        row = conn.execute(select(claims).where(claims.c.code_hash == code_hash)).one()
    return _claim_from(row)


def attach_claim(engine: Engine, claim_id: int, community_id: int, platform: str, platform_user_id: str) -> None:
    """Note which member a redeemed claim went to (so forgetting the member deletes it)."""
    claims = _claims()
    member = (
        select(Member.id)
        .where(
            Member.community_id == community_id,
            Member.platform == platform,
            Member.platform_user_id == platform_user_id,
        )
        .scalar_subquery()
    )
    with writing(engine).begin() as conn:
        conn.execute(update(claims).where(claims.c.id == claim_id).values(member_id=member))


def void_claim(engine: Engine, community_id: int, provider: str, charge_id: str, at: datetime) -> bool:
    """A refund of a checkout nobody claimed yet: its code stops working.

    Returns:
        True when an unclaimed claim was voided now.
    """
    claims = _claims()
    with writing(engine).begin() as conn:
        changed = conn.execute(
            update(claims)
            .where(
                claims.c.community_id == community_id,
                claims.c.provider == provider,
                claims.c.charge_id == charge_id,
                claims.c.claimed_at.is_(None),
                claims.c.refunded_at.is_(None),
            )
            .values(refunded_at=at)
        ).rowcount
    return bool(changed)
