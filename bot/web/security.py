"""Security headers on every response the web server sends, error pages included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

# No inline script anywhere: pages carry chart data in <script type="application/json"> blocks read by static JS.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _apply(response: web.StreamResponse) -> None:
    if response.prepared:
        # A stream (the live feed) sent its headers already; it got them in on_response_prepare.
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add :data:`SECURITY_HEADERS` to the response, also to 404s and other errors raised as exceptions."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply(exc)
        raise
    _apply(response)
    return response


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def add_security_headers(app: web.Application) -> None:
    """Install the headers on ``app``: as a middleware and on every prepared response (streams, static files)."""
    app.middlewares.append(security_headers)
    app.on_response_prepare.append(_on_prepare)
