"""What every dashboard page shares: the Jinja environment, the range and its errors, rendering, CSV downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from analytics.formatting import fmt_day
from analytics.render.html import build_environment as build_report_environment
from bot.reporting import ReportError
from bot.web.context import CONTEXT, WebContext
from bot.web.data import REPORT_CACHE, DashboardData, DashboardRange, RangeError, ReportCache, parse_range

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"

NAV: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/activity", "Activity"),
    ("/retention", "Retention"),
    ("/members", "Members"),
    ("/sales", "Sales"),
    ("/questions", "Questions"),
    ("/nudges", "Nudges"),
    ("/surveys", "Surveys"),
    ("/health", "Health"),
)

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such cells get a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

JINJA: web.AppKey[jinja2.Environment] = web.AppKey("cohortbot_jinja", jinja2.Environment)


def build_environment() -> jinja2.Environment:
    """The dashboard's Jinja environment: its pages first, then the components the static report shares.

    Returns:
        :func:`analytics.render.html.build_environment` over the dashboard's templates.
    """
    return build_report_environment((TEMPLATES,))


def context(request: web.Request) -> WebContext:
    """The web context of the app serving ``request``."""
    return request.app[CONTEXT]


def cache(request: web.Request) -> ReportCache:
    """The report cache of the app serving ``request``."""
    return request.app[REPORT_CACHE]


def render(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    """A page rendered with the base template's values (navigation, admin, CSRF token).

    Args:
        request: The request.
        template: The template's file name.
        status: The HTTP status.
        **values: The page's own values (``title``; ``rng``, ``data``, ``freshness``, ``query`` from
            :func:`page_values` on pages with a range).

    Returns:
        The HTML response.
    """
    admin = request.get("admin")
    name = getattr(admin, "display_name", None) or getattr(admin, "platform_user_id", None) or "admin"
    values.setdefault("rng", None)
    values.setdefault("data", None)
    values.setdefault("query", "")
    values.setdefault("notices", [])
    html = (
        request.app[JINJA]
        .get_template(template)
        .render(
            nav=NAV,
            path=request.path,
            admin_name=name,
            csrf_token=request.get("csrf_token", ""),
            community=context(request).settings.community.name,
            fmt_day=fmt_day,
            **values,
        )
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "private, no-store"},
    )


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """A page that says what went wrong (a bad range, an unknown member), in the dashboard's frame."""
    return render(request, "error.html", status=status, title=title, message=message)


async def dashboard_range(request: web.Request) -> DashboardRange:
    """The range the request asks for.

    Raises:
        web.HTTPBadRequest: ``from``/``to`` are not usable; the body is a page that says why.
    """
    try:
        return parse_range(request.query, default_end=await cache(request).default_end())
    except RangeError as exc:
        page = error_page(request, 400, "That date range cannot be shown", str(exc))
        raise web.HTTPBadRequest(text=page.text, content_type="text/html") from None


async def dashboard_data(request: web.Request) -> DashboardData:
    """The figures of the requested range (cached).

    Raises:
        web.HTTPBadRequest: A bad range.
        web.HTTPInternalServerError: The report cannot be built; the body says why.
    """
    rng = await dashboard_range(request)
    try:
        return await cache(request).get(rng)
    except ReportError as exc:
        page = error_page(request, 500, "The figures cannot be read", str(exc))
        raise web.HTTPInternalServerError(text=page.text, content_type="text/html") from None


def freshness(data: DashboardData, now: datetime) -> str:
    """The footer's line on how fresh the figures are."""
    age = max(0, int((now - data.built_at).total_seconds()))
    parts = [f"Figures read {age} s ago ({data.built_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC)"]
    if data.report.data_ends is not None:
        parts.append(f"data ends {data.report.data_ends.isoformat()}")
    elif data.latest_day is None:
        parts.append("nothing recorded yet")
    return "; ".join(parts) + "."


def page_values(request: web.Request, data: DashboardData) -> dict[str, Any]:
    """What the base template needs from the figures: the range picker, the footer, links that keep the range."""
    notices: list[str] = []
    if data.hint:
        notices.append(data.hint.replace("try --as-of", "pick the as-of day"))
    return {
        "rng": data.range,
        "data": data,
        "freshness": freshness(data, context(request).clock.now()),
        "query": data.range.query(),
        "hint_notices": notices,
    }


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``=``, ``+``, ``-`` or ``@`` gets a ``'`` before it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """A CSV document in UTF-8: one header row, formula-safe cells.

    Numbers are written as numbers (a negative number is data, not a formula); every other cell goes through
    :func:`safe_cell`.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([v if isinstance(v, int | float) and not isinstance(v, bool) else safe_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def csv_download(filename: str, body: bytes) -> web.Response:
    """A CSV download of ``body`` saved as ``filename``."""
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"},
    )


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> web.Response:
    """A CSV download (see :func:`csv_bytes`), with ``Content-Disposition: attachment``.

    Args:
        filename: The name the browser saves it under.
        header: Column names.
        rows: Rows of values.

    Returns:
        The response.
    """
    return csv_download(filename, csv_bytes(header, rows))


def query_with(query: Mapping[str, str], **changes: object) -> str:
    """The query string with ``changes`` applied (None removes a key), for links that keep the range."""
    merged: dict[str, str] = dict(query)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return urlencode(merged)
