"""Dashboard access: one-time login links and the sessions they open.

A login is a row with a random id, bound to a community and to the admin's platform identity, valid
:data:`LOGIN_LIFETIME` and usable once. Redeeming it is one ``UPDATE ... WHERE used_at IS NULL AND expires_at > now``,
so two processes (``cohortbot run`` and ``cohortbot dashboard serve`` on one database) can never both use it.

A session is a random token the browser keeps in its cookie; the database keeps only the token's SHA-256, so a
copy of the database (a backup, a support bundle) opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import Engine, Table, and_, delete, func, insert, select, update

from storage.engine import writing
from storage.models import DashboardLogin, DashboardSession, table_of

LOGIN_LIFETIME: Final = timedelta(minutes=10)
SESSION_LIFETIME: Final = timedelta(hours=12)

RedeemFailure = Literal["unknown", "used", "expired"]


@dataclass(frozen=True, slots=True)
class DashboardIdentity:
    """Who a login or session belongs to.

    Attributes:
        community_id: The community whose dashboard it opens.
        platform: ``"telegram"``, ``"discord"``, or ``"server"`` for a link printed at the server.
        platform_user_id: The admin's id on that platform (``"owner"`` for the server).
        display_name: The admin's name as shown on the pages; None if unknown.
    """

    community_id: int
    platform: str
    platform_user_id: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class IssuedLogin:
    """A login just issued: its id (to be signed into the link) and when it stops working."""

    login_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Redeemed:
    """The outcome of redeeming a login: the identity it was bound to, or why it was refused."""

    identity: DashboardIdentity | None
    failure: RedeemFailure | None = None


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A session just opened: the token for the cookie (never stored) and its expiry."""

    token: str
    expires_at: datetime


def _logins() -> Table:
    return table_of(DashboardLogin)


def _sessions() -> Table:
    return table_of(DashboardSession)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_login(engine: Engine, identity: DashboardIdentity, now: datetime) -> IssuedLogin:
    """Store a new one-time login for ``identity``, valid :data:`LOGIN_LIFETIME` from ``now``.

    Args:
        engine: The database.
        identity: Who may use it.
        now: The current time (UTC-aware).

    Returns:
        The login's random id and expiry.
    """
    login_id = secrets.token_urlsafe(24)
    expires_at = now + LOGIN_LIFETIME
    with writing(engine).begin() as conn:
        conn.execute(
            insert(_logins()).values(
                id=login_id,
                community_id=identity.community_id,
                platform=identity.platform,
                platform_user_id=identity.platform_user_id,
                display_name=identity.display_name,
                issued_at=now,
                expires_at=expires_at,
                used_at=None,
            )
        )
    return IssuedLogin(login_id, expires_at)


def redeem_login(engine: Engine, login_id: str, now: datetime) -> Redeemed:
    """Use a login once: mark it used and return whom it was for.

    Args:
        engine: The database.
        login_id: The id from a verified link.
        now: The current time (UTC-aware).

    Returns:
        The identity, or the reason it cannot be used: ``"unknown"`` (no such login, e.g. forgotten),
        ``"used"`` or ``"expired"``.
    """
    table = _logins()
    with writing(engine).begin() as conn:
        # One conditional UPDATE: whichever transaction runs it first wins; the other updates no row.
        claimed = conn.execute(
            update(table)
            .where(and_(table.c.id == login_id, table.c.used_at.is_(None), table.c.expires_at > now))
            .values(used_at=now)
        ).rowcount
        row = conn.execute(
            select(
                table.c.community_id,
                table.c.platform,
                table.c.platform_user_id,
                table.c.display_name,
                table.c.used_at,
            ).where(table.c.id == login_id)
        ).one_or_none()
    if row is None:
        return Redeemed(None, "unknown")
    if claimed != 1:
        return Redeemed(None, "used" if row.used_at is not None else "expired")
    return Redeemed(DashboardIdentity(row.community_id, row.platform, row.platform_user_id, row.display_name))


def login_state(engine: Engine, login_id: str, now: datetime) -> RedeemFailure | None:
    """Why a login could not be used now (``"unknown"``, ``"used"``, ``"expired"``), or None if it could.

    Reads only: the sign-in page shows it before anyone presses the button.
    """
    table = _logins()
    with engine.connect() as conn:
        row = conn.execute(select(table.c.used_at, table.c.expires_at).where(table.c.id == login_id)).one_or_none()
    if row is None:
        return "unknown"
    if row.used_at is not None:
        return "used"
    return "expired" if row.expires_at <= now else None


def open_session(engine: Engine, identity: DashboardIdentity, now: datetime) -> OpenedSession:
    """Start a session for ``identity`` lasting :data:`SESSION_LIFETIME`.

    Args:
        engine: The database.
        identity: Who signed in.
        now: The current time (UTC-aware).

    Returns:
        The cookie token (only its hash is stored) and the expiry.
    """
    token = secrets.token_urlsafe(32)
    expires_at = now + SESSION_LIFETIME
    with writing(engine).begin() as conn:
        conn.execute(
            insert(_sessions()).values(
                token_hash=hash_token(token),
                community_id=identity.community_id,
                platform=identity.platform,
                platform_user_id=identity.platform_user_id,
                display_name=identity.display_name,
                created_at=now,
                expires_at=expires_at,
                revoked_at=None,
            )
        )
    return OpenedSession(token, expires_at)


def live_session(engine: Engine, token: str, now: datetime) -> DashboardIdentity | None:
    """The identity of a session that is neither expired nor revoked, or None.

    Args:
        engine: The database.
        token: The token from the cookie.
        now: The current time (UTC-aware).
    """
    table = _sessions()
    with engine.connect() as conn:
        row = conn.execute(
            select(table.c.community_id, table.c.platform, table.c.platform_user_id, table.c.display_name).where(
                table.c.token_hash == hash_token(token),
                table.c.revoked_at.is_(None),
                table.c.expires_at > now,
            )
        ).one_or_none()
    if row is None:
        return None
    return DashboardIdentity(row.community_id, row.platform, row.platform_user_id, row.display_name)


def revoke_session(engine: Engine, token: str, now: datetime) -> bool:
    """End one session (logout).

    Returns:
        True if a live session was ended.
    """
    table = _sessions()
    with writing(engine).begin() as conn:
        count = conn.execute(
            update(table)
            .where(table.c.token_hash == hash_token(token), table.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
    return bool(count)


def revoke_sessions(
    engine: Engine,
    now: datetime,
    *,
    community_id: int | None = None,
    platform: str | None = None,
    platform_user_id: str | None = None,
) -> int:
    """End every live session, or only those of one community or one identity.

    Args:
        engine: The database.
        now: The current time (UTC-aware).
        community_id: Only this community's sessions.
        platform: Only sessions of this platform (with ``platform_user_id``).
        platform_user_id: Only this admin's sessions.

    Returns:
        How many live sessions were ended.
    """
    table = _sessions()
    conditions = [table.c.revoked_at.is_(None), table.c.expires_at > now]
    if community_id is not None:
        conditions.append(table.c.community_id == community_id)
    if platform is not None:
        conditions.append(table.c.platform == platform)
    if platform_user_id is not None:
        conditions.append(table.c.platform_user_id == platform_user_id)
    with writing(engine).begin() as conn:
        count = conn.execute(update(table).where(*conditions).values(revoked_at=now)).rowcount
    return int(count)


def count_live_sessions(engine: Engine, now: datetime) -> int:
    """How many sessions are live (not expired, not revoked)."""
    table = _sessions()
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(table.c.revoked_at.is_(None), table.c.expires_at > now)
            ).scalar_one()
        )


def purge_expired(engine: Engine, now: datetime) -> int:
    """Delete logins and sessions that can no longer be used (housekeeping).

    Returns:
        How many rows were deleted.
    """
    logins = _logins()
    sessions = _sessions()
    with writing(engine).begin() as conn:
        count = conn.execute(delete(logins).where(logins.c.expires_at <= now)).rowcount
        count += conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount
    return int(count)
