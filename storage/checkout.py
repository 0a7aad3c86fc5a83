"""Outside checkouts (Stripe, the generic webhook): handled webhook events and one-time claim codes.

A webhook event is applied once by its provider's event id: :func:`record_webhook_event` inserts it under a unique
``(provider, event_id)``, so a replay, a redelivery or a second process receiving the same event learns that it
was handled. A claim is created in the same transaction as its event (:func:`create_claim`), so two deliveries of
one event never make two codes. Claim codes are stored as SHA-256 only, and redeeming one is a single
``UPDATE ... WHERE claimed_at IS NULL``, so a code attaches its purchase to one account, once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, Engine, Table, insert, select, update
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


def webhook_event_seen(engine: Engine, provider: str, event_id: str) -> bool:
    """Whether the event was handled already (stored by :func:`record_webhook_event` or :func:`create_claim`)."""
    events = _events()
    with engine.connect() as conn:
        found = conn.execute(
            select(events.c.id).where(events.c.provider == provider, events.c.event_id == event_id)
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


def record_webhook_event(
    engine: Engine, community_id: int, *, provider: str, event_id: str, event_type: str, at: datetime
) -> bool:
    """Store a handled event once.

    Returns:
        True when newly stored; False when it was stored already (by this process or another).
    """
    try:
        with writing(engine).begin() as conn:
            _insert_event(conn, community_id, provider, event_id, event_type, at)
    except IntegrityError:
        return False
    return True


def create_claim(
    engine: Engine,
    community_id: int,
    *,
    provider: str,
    event_id: str,
    event_type: str,
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
    """Store a claim and the event that paid for it, in one transaction.

    Returns:
        True when stored; False when the event (or a claim for the same checkout) was stored already: nothing
        changed.
    """
    try:
        with writing(engine).begin() as conn:
            _insert_event(conn, community_id, provider, event_id, event_type, received_at)
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
