"""The dashboard pages. A placeholder Overview until the real pages land."""

from __future__ import annotations

from html import escape

from aiohttp import web

from bot.web.context import CONTEXT


async def overview(request: web.Request) -> web.Response:
    """``/``: who is signed in, today's live figures and a sign-out button."""
    ctx = request.app[CONTEXT]
    admin = request["admin"]
    name = escape(admin.display_name or admin.platform_user_id)
    figures = "".join(
        f'<li>{label}: <strong data-live="{key}">…</strong></li>'
        for key, label in (
            ("messages", "Messages today"),
            ("reactions", "Reactions today"),
            ("active_members", "Active members today"),
            ("joins", "Joins today"),
            ("leaves", "Leaves today"),
            ("purchases", "Purchases today"),
        )
    )
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(ctx.settings.community.name)} dashboard</title>"
        '<script src="/static/live.js" defer></script></head><body>'
        f"<h1>{escape(ctx.settings.community.name)}</h1><p>Signed in as {name}.</p>"
        f"<ul>{figures}</ul><p data-live-age></p>"
        '<form method="post" action="/logout">'
        f'<input type="hidden" name="csrf_token" value="{escape(request["csrf_token"])}">'
        "<button type=submit>Sign out</button></form></body></html>"
    )
    return web.Response(text=html, content_type="text/html")


def add_page_routes(app: web.Application) -> None:
    """Add the dashboard's page routes to ``app``."""
    app.router.add_get("/", overview)
