"""Dashboard login links: a stored one-time login, its id signed with ``COHORTBOT_SECRET``, as a URL.

No aiohttp here: the ``/dashboard`` command and ``cohortbot dashboard link`` issue links without a web server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Engine

from bot.config import Settings
from bot.config.settings import SECRET_ENV
from storage.dashboard_access import DashboardIdentity, issue_login

NO_SECRET_MESSAGE: Final = (
    f"dashboard login links are signed with {SECRET_ENV}, which is not set; set it to a long random string "
    '(e.g. from: python -c "import secrets; print(secrets.token_urlsafe(32))") and restart'
)

# Platform identity of the owner at the server (``cohortbot dashboard link``).
SERVER_PLATFORM: Final = "server"
SERVER_USER: Final = "owner"


class NoSecretError(RuntimeError):
    """``COHORTBOT_SECRET`` is not set, so no login link can be signed."""

    def __init__(self) -> None:
        super().__init__(NO_SECRET_MESSAGE)


@dataclass(frozen=True, slots=True)
class LoginLink:
    """A login link ready to hand out, and when it stops working."""

    url: str
    expires_at: datetime


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_login(secret: str, login_id: str) -> str:
    """The link token for a login: ``<id>.<HMAC-SHA256 of the id>``."""
    return f"{login_id}.{_mac(secret, 'dashboard-login', login_id)}"


def verify_login(secret: str, token: str) -> str | None:
    """The login id in a link token, or None if the token was not signed with ``secret`` (forged or changed)."""
    login_id, dot, mac = token.rpartition(".")
    if not dot or not login_id or len(token) > 200:
        return None
    return login_id if hmac.compare_digest(mac, _mac(secret, "dashboard-login", login_id)) else None


def csrf_for(secret: str, token_hash: str) -> str:
    """The CSRF token of a session: derived from the session, so it needs no storage and dies with the session."""
    return _mac(secret, "dashboard-csrf", token_hash)


def base_url(settings: Settings) -> str:
    """Where people open the dashboard: ``[web] public_url``, else ``http://host:port``."""
    if settings.web.public_url:
        return settings.web.public_url.rstrip("/")
    host = settings.web.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def issue_login_link(
    engine: Engine, settings: Settings, secret: str | None, identity: DashboardIdentity, now: datetime
) -> LoginLink:
    """Store a one-time login for ``identity`` and return its signed URL.

    Args:
        engine: The database.
        settings: For the link's address (``[web]``).
        secret: ``COHORTBOT_SECRET``.
        identity: The admin it is for.
        now: The current time (UTC-aware).

    Returns:
        The link ``<public_url>/login?t=<token>`` and its expiry.

    Raises:
        NoSecretError: No secret is set, so nothing is stored.
    """
    if not secret:
        raise NoSecretError()
    login = issue_login(engine, identity, now)
    return LoginLink(f"{base_url(settings)}/login?t={sign_login(secret, login.login_id)}", login.expires_at)
