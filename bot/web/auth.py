"""Who gets in: one-time login links, the session cookie, CSRF checks, logout.

``GET /login?t=...`` only shows a "Sign in" button: chat apps fetch links to draw previews, and such a fetch must
not use up the link. ``POST /login`` redeems it, opens a session and sets the cookie. Every other page (except
``/healthz`` and ``/static/``) needs a live session; every POST also needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import hmac
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from typing import Final

from aiohttp import web

from bot.core.ports import WebhookRoutes
from bot.web.context import CONTEXT, WebContext
from bot.web.links import csrf_for, verify_login
from storage.dashboard_access import (
    SESSION_LIFETIME,
    RedeemFailure,
    hash_token,
    live_session,
    login_state,
    open_session,
    redeem_login,
    revoke_session,
)

COOKIE_NAME: Final = "cohortbot_session"
# /metrics checks its own access (local, or a bearer token): a dashboard session must not be needed to scrape it.
PUBLIC_PATHS: Final = frozenset({"/login", "/healthz", "/metrics", "/favicon.ico"})
# Payment webhooks check their provider's signature, and the checkout pages show buyers (not admins) their result.
PUBLIC_PREFIXES: Final = ("/static/", "/webhooks/", "/checkout/")
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

HOW_TO_GET_A_LINK: Final = (
    "Ask for a sign-in link with the <code>/dashboard</code> command in your community's chat (admins only), "
    "or run <code>cohortbot dashboard link</code> on the server."
)

_FAILURES: Final[dict[str, str]] = {
    "used": "This link was already used. Each link works once — ask for a new one with /dashboard.",
    "expired": "This link expired — ask for a new one with /dashboard. Links work for 10 minutes.",
    "unknown": "This link is not valid any more — ask for a new one with /dashboard.",
    "forged": "This link is not valid: it was changed or does not come from this server. Ask for a new one "
    "with /dashboard.",
    "missing": "This page needs a sign-in link. Ask for one with /dashboard.",
    "community": "This link is for another community's dashboard.",
    "no_secret": "Sign-in is switched off: the server has no COHORTBOT_SECRET set.",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WEBHOOKS: web.AppKey[WebhookRoutes] = web.AppKey("cohortbot_webhooks", WebhookRoutes)
"""Webhook paths on this server: they check their own secret instead of a dashboard session."""


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """The signed-in owner or admin, on ``request["admin"]``.

    Attributes:
        platform: ``"telegram"``, ``"discord"``, or ``"server"`` (a link from ``cohortbot dashboard link``).
        platform_user_id: Their id on that platform.
        display_name: Their name, if known.
    """

    platform: str
    platform_user_id: str
    display_name: str | None


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    # Small, self-contained pages (no template, no script) so sign-in works even if the page templates fail.
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5;color:#1d2330}button{font-size:1.1rem;padding:.6rem 1.4rem;border-radius:.4rem;"
        "border:0;background:#2f5fd0;color:#fff;cursor:pointer}code{background:#eef;padding:0 .2rem}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html")


def _refusal(reason: str, status: int = 403) -> web.Response:
    return _page("Cannot sign in", f"<p>{escape(_FAILURES[reason])}</p>", status=status)


def _community_name(ctx: WebContext) -> str:
    return ctx.settings.community.name


def _check_link(ctx: WebContext, token: str) -> tuple[str | None, str | None]:
    """(login id, None) for a genuine link, else (None, the refusal reason)."""
    if not ctx.signing_secret:
        return None, "no_secret"
    if not token:
        return None, "missing"
    login_id = verify_login(ctx.signing_secret, token)
    if login_id is None:
        return None, "forged"
    return login_id, None


async def login_page(request: web.Request) -> web.Response:
    """``GET /login?t=``: the sign-in button (a GET never uses up the link)."""
    ctx = request.app[CONTEXT]
    token = request.query.get("t", "")
    login_id, problem = _check_link(ctx, token)
    if login_id is None:
        assert problem is not None
        return _refusal(problem, 403 if problem != "no_secret" else 503)
    state: RedeemFailure | None = await asyncio.to_thread(login_state, ctx.engine, login_id, ctx.clock.now())
    if state == "used" and await _signed_in(request, ctx):
        # The admin opened their link again after signing in with it: they are in already.
        raise web.HTTPSeeOther("/")
    if state is not None:
        return _refusal(state)
    community = escape(_community_name(ctx))
    body = (
        f"<p>Open the {community} dashboard in this browser. The link works once and signs you in for 12 hours.</p>"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="t" value="{escape(token)}">'
        "<button type=submit>Sign in</button></form>"
    )
    return _page(f"Sign in to {_community_name(ctx)} dashboard", body)


async def _signed_in(request: web.Request, ctx: WebContext) -> bool:
    token = request.cookies.get(COOKIE_NAME, "")
    if not token:
        return False
    identity = await asyncio.to_thread(live_session, ctx.engine, token, ctx.clock.now())
    return identity is not None and identity.community_id == ctx.community_id


def _secure(request: web.Request, ctx: WebContext) -> bool:
    return request.secure or ctx.settings.web.public_url.startswith("https://")


async def login_submit(request: web.Request) -> web.Response:
    """``POST /login``: use the link once, open a session, set the cookie and go to the Overview."""
    ctx = request.app[CONTEXT]
    form = await request.post()
    token = form.get("t", "")
    login_id, problem = _check_link(ctx, token if isinstance(token, str) else "")
    if login_id is None:
        assert problem is not None
        return _refusal(problem, 403 if problem != "no_secret" else 503)
    now = ctx.clock.now()
    redeemed = await asyncio.to_thread(redeem_login, ctx.engine, login_id, now)
    if redeemed.identity is None:
        return _refusal(redeemed.failure or "unknown")
    if redeemed.identity.community_id != ctx.community_id:
        return _refusal("community")
    session = await asyncio.to_thread(open_session, ctx.engine, redeemed.identity, now)
    response = web.HTTPSeeOther("/")
    response.set_cookie(
        COOKIE_NAME,
        session.token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        # Lax, not Strict: a browser opened from a chat app's link must still send the cookie on the redirect.
        samesite="Lax",
        secure=_secure(request, ctx),
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    """``POST /logout``: end this session and clear the cookie (the middleware checked CSRF)."""
    ctx = request.app[CONTEXT]
    token = request.cookies.get(COOKIE_NAME, "")
    if token:
        await asyncio.to_thread(revoke_session, ctx.engine, token, ctx.clock.now())
    response = _page("Signed out", f"<p>You are signed out. {HOW_TO_GET_A_LINK}</p>")
    response.del_cookie(COOKIE_NAME, path="/")
    return response


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _not_signed_in() -> web.Response:
    body = f"<p>You are not signed in, or your session ended.</p><p>{HOW_TO_GET_A_LINK}</p>"
    return _page("Sign in to see the dashboard", body, status=401)


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let only signed-in admins past, set ``request["admin"]``/``request["csrf_token"]``, check CSRF on POSTs."""
    if _is_public(request.path):
        return await handler(request)
    webhooks = request.app.get(WEBHOOKS)
    if request.method == "POST" and webhooks is not None and webhooks.handler(request.path) is not None:
        return await handler(request)
    ctx = request.app[CONTEXT]
    token = request.cookies.get(COOKIE_NAME, "")
    identity = await asyncio.to_thread(live_session, ctx.engine, token, ctx.clock.now()) if token else None
    if identity is None or identity.community_id != ctx.community_id:
        return _not_signed_in()
    csrf = csrf_for(ctx.signing_secret or "", hash_token(token))
    with warnings.catch_warnings():
        # The pages read these plain string keys (the shared contract); aiohttp only suggests typed keys.
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request["admin"] = AdminIdentity(identity.platform, identity.platform_user_id, identity.display_name)
        request["csrf_token"] = csrf
    if request.method not in SAFE_METHODS:
        sent = request.headers.get("X-CSRF-Token", "")
        if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            field = (await request.post()).get("csrf_token", "")
            sent = field if isinstance(field, str) else ""
        if not sent or not hmac.compare_digest(sent, csrf):
            return _page(
                "Form expired",
                "<p>This form could not be checked (missing or stale security token). Go back, reload the page "
                "and try again.</p>",
                status=403,
            )
    response = await handler(request)
    if not response.prepared:
        # Pages name members: no shared cache (a proxy, a shared computer's disk) may keep a copy.
        response.headers.setdefault("Cache-Control", "private, no-store")
    return response


def add_auth_routes(app: web.Application) -> None:
    """Install the session middleware and the ``/login`` and ``/logout`` routes on ``app``."""
    app.middlewares.append(require_session)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
