"""The dashboard's pages, downloads and static files, added to the one web application.

``bot/web/server.py`` builds the application (login, security headers, live feed) and calls
:func:`add_page_routes`; every handler here reads ``request.app[CONTEXT]`` and relies on the server's middleware for
``request["admin"]`` and ``request["csrf_token"]``.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from bot.web.context import CONTEXT
from bot.web.data import REPORT_CACHE, ReportCache
from bot.web.pages import members, ops, questions, report_pages, sales, surveys
from bot.web.pages.common import JINJA, STATIC, build_environment

PLOTLY_CACHE = "public, max-age=31536000, immutable"
STATIC_CACHE = "public, max-age=300"


def plotly_bundle_path() -> str:
    """The file of the Plotly JavaScript bundle that ships inside the installed ``plotly`` package."""
    return str(resources.files("plotly") / "package_data" / "plotly.min.js")


async def plotly_bundle(request: web.Request) -> web.FileResponse:
    """``/static/plotly.min.js``: served from the plotly package, cached for a year (it changes only on upgrade)."""
    return web.FileResponse(plotly_bundle_path(), headers={"Cache-Control": PLOTLY_CACHE})


async def static_file(request: web.Request) -> web.StreamResponse:
    """``/static/<name>``: the dashboard's CSS and scripts."""
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": STATIC_CACHE})


def add_page_routes(app: web.Application) -> None:
    """Add every dashboard page, CSV and JSON download and the static files to ``app``.

    ``app[CONTEXT]`` must be set; this adds the Jinja environment and the report cache (``app[REPORT_CACHE]``, whose
    ``invalidate(commit)`` the writer calls after each commit).

    Args:
        app: The web application, not started yet.
    """
    app[JINJA] = build_environment()
    ctx = app[CONTEXT]
    cache = app[REPORT_CACHE] = ReportCache(ctx)
    # In-process (cohortbot run) every commit of the writer makes the cached figures stale; what it touched (the
    # earliest day) lets the next refresh read only those days again.
    if ctx.writer is not None:
        ctx.writer.add_commit_listener(cache.invalidate)
    r = app.router
    r.add_get("/static/plotly.min.js", plotly_bundle)
    r.add_get("/static/{name}", static_file)
    r.add_get("/", report_pages.overview)
    r.add_get("/activity", report_pages.activity)
    r.add_get("/retention", report_pages.retention)
    r.add_get("/report.json", report_pages.report_json)
    r.add_get("/activity.csv", report_pages.activity_csv)
    r.add_get("/channels.csv", report_pages.channels_csv)
    r.add_get("/retention.csv", report_pages.retention_csv)
    r.add_get("/members", members.members_page)
    r.add_get("/members.csv", members.members_csv)
    r.add_get("/members/{member_id}", members.member_page)
    r.add_get("/sales", sales.sales_page)
    r.add_get("/sales.csv", sales.sales_csv)
    r.add_get("/subscriptions.csv", sales.subscriptions_csv)
    r.add_get("/ltv.csv", sales.ltv_csv)
    r.add_get("/questions", questions.questions_page)
    r.add_get("/questions.csv", questions.questions_csv)
    r.add_get("/questions.json", questions.questions_json_page)
    r.add_get("/nudges", ops.nudges_page)
    r.add_get("/surveys", surveys.surveys_page)
    r.add_get("/surveys.csv", surveys.surveys_csv)
    r.add_get("/surveys.json", surveys.surveys_json)
    r.add_get("/health", ops.health_page)
