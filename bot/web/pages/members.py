"""``/members`` (segments and a searchable, sortable, paged member table), ``/members.csv`` and a member's page."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from analytics.formatting import fmt_ago, fmt_int, fmt_money, fmt_number
from analytics.render.shared import segment_name
from analytics.safe_text import clean_name
from bot.web.data import DashboardData
from bot.web.pages import charts
from bot.web.pages.common import (
    context,
    csv_bytes,
    csv_download,
    dashboard_data,
    error_page,
    page_values,
    query_with,
    render,
)
from storage.member_profile import member_profile

PAGE_SIZE = 50
TABS: tuple[tuple[str, str], ...] = (("inactive", "Inactive"), ("at_risk", "At risk"), ("top", "Top"), ("all", "All"))
SORTS = ("name", "last_seen", "score", "messages", "courses", "segment")


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member in the table."""

    member_id: int
    name: str
    platform: str
    days_since_active: int | None
    score: float
    messages_28d: int
    segment: str | None
    courses: tuple[str, ...]


def member_rows(data: DashboardData, tab: str, *, only: list[int] | None = None) -> list[MemberRow]:
    """The members of a tab, in the tab's own order (inactive: most recently active first; at risk and top: score)."""
    table = data.member_table
    courses: dict[int, list[str]] = {}
    for row in data.ledger:
        if row.member_id is not None and row.refunded_at is None and row.title not in courses.get(row.member_id, []):
            courses.setdefault(row.member_id, []).append(row.title)
    if only is not None:
        ids = only
    elif tab == "inactive":
        ids = [m.member_id for m in data.report.inactive]
    elif tab == "at_risk":
        ids = [m.member_id for m in data.report.at_risk]
    elif tab == "top":
        ids = [m.member_id for m in data.report.top_members]
    else:
        current = table[table["is_member"]]
        ids = [int(i) for i in current.sort_values("score", ascending=False, kind="stable").index]
    known = [i for i in ids if i in table.index]
    picked = table.loc[known, ["name", "platform", "days_since_active", "score", "messages_28d", "segment"]]
    return [
        MemberRow(
            member_id=int(member_id),
            name=str(name),
            platform=str(platform),
            days_since_active=None if days is None or math.isnan(days) else int(days),
            score=float(score),
            messages_28d=int(messages),
            segment=None if segment is None else str(segment),
            courses=tuple(courses.get(int(member_id), ())),
        )
        for member_id, name, platform, days, score, messages, segment in zip(
            known,
            picked["name"].tolist(),
            picked["platform"].tolist(),
            picked["days_since_active"].tolist(),
            picked["score"].tolist(),
            picked["messages_28d"].tolist(),
            picked["segment"].tolist(),
            strict=True,
        )
    ]


async def tab_rows(data: DashboardData, tab: str) -> list[MemberRow]:
    """The rows of a tab, built once per set of figures (in a thread: a big community has 100,000 of them)."""
    key = f"member_rows:{tab}"
    rows = data.memo.get(key)
    if rows is None:
        rows = data.memo[key] = await asyncio.to_thread(member_rows, data, tab)
    return list(rows)


def member_rows_by_id(data: DashboardData, member_id: int) -> MemberRow | None:
    """The table row of one member; None for a former member or one the table does not list."""
    rows = member_rows(data, "all", only=[member_id])
    return rows[0] if rows else None


def _sort_key(sort: str):  # type: ignore[no-untyped-def]
    if sort == "name":
        return lambda m: m.name.casefold()
    if sort == "last_seen":  # most recent first when ascending; never-active members last
        return lambda m: math.inf if m.days_since_active is None else m.days_since_active
    if sort == "messages":
        return lambda m: m.messages_28d
    if sort == "courses":
        return lambda m: len(m.courses)
    if sort == "segment":
        return lambda m: m.segment or ""
    return lambda m: m.score


def filtered(rows: list[MemberRow], query: str, sort: str | None, descending: bool) -> list[MemberRow]:
    """Rows whose name, platform or course contains ``query`` (any case), sorted by ``sort`` when given."""
    needle = query.strip().casefold()
    if needle:
        rows = [
            m
            for m in rows
            if needle in m.name.casefold() or needle in m.platform or any(needle in c.casefold() for c in m.courses)
        ]
    if sort in SORTS:
        rows = sorted(rows, key=_sort_key(sort), reverse=descending)
    return rows


def _params(request: web.Request) -> tuple[str, str, str | None, bool, int]:
    tab = request.query.get("tab", "inactive")
    if tab not in dict(TABS):
        tab = "inactive"
    sort = request.query.get("sort") or None
    descending = request.query.get("dir", "desc" if sort in ("score", "messages", "courses") else "asc") == "desc"
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    return tab, request.query.get("q", ""), sort, descending, page


async def members_page(request: web.Request) -> web.Response:
    """``/members``: segment counts and the member table of a tab."""
    data = await dashboard_data(request)
    tab, q, sort, descending, page = _params(request)
    segment = request.query.get("segment") or None
    rows = filtered(await tab_rows(data, tab), q, sort, descending)
    if segment is not None:
        rows = [m for m in rows if m.segment == segment]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(page, pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    base = dict(request.query)
    headers = []
    for key, label in (
        ("name", "Name"),
        ("platform", None),
        ("last_seen", "Last seen"),
        ("score", "Score"),
        ("messages", "Messages 28d"),
        ("segment", "Segment"),
        ("courses", "Courses"),
    ):
        if label is None:
            headers.append({"text": "Platform"})
            continue
        flip = "asc" if sort == key and descending else "desc" if sort == key else None
        direction = flip or ("desc" if key in ("score", "messages", "courses") else "asc")
        arrow = (" ▼" if descending else " ▲") if sort == key else ""
        headers.append(
            {"text": label + arrow, "href": "/members?" + query_with(base, sort=key, dir=direction, page=None)}
        )
    table = [
        [
            {"text": clean_name(m.name), "href": f"/members/{m.member_id}?{data.range.query()}"},
            m.platform,
            "never active" if m.days_since_active is None else fmt_ago(m.days_since_active),
            fmt_number(m.score, 1),
            fmt_int(m.messages_28d),
            segment_name(m.segment),
            ", ".join(m.courses) or "–",
        ]
        for m in shown
    ]
    segments = sorted(data.report.segments.items(), key=lambda kv: -kv[1])
    return render(
        request,
        "members.html",
        title="Members",
        tabs=[
            (key, label, "/members?" + query_with(base, tab=key, page=None, sort=None, dir=None)) for key, label in TABS
        ],
        tab=tab,
        search=q,
        sort=sort or "",
        direction="desc" if descending else "asc",
        headers=headers,
        table=table,
        total=len(rows),
        page=page,
        pages=pages,
        prev_url=None if page <= 1 else "/members?" + query_with(base, page=page - 1),
        next_url=None if page >= pages else "/members?" + query_with(base, page=page + 1),
        csv_url="/members.csv?" + query_with(base, page=None),
        segments=[
            (
                segment_name(k),
                fmt_int(v),
                "/members?" + query_with(base, tab="all", segment=None if k == segment else k, page=None),
                k == segment,
            )
            for k, v in segments
        ],
        segment=segment or "",
        inactive_after=context(request).settings.nudges.inactive_after_days,
        **page_values(request, data),
    )


async def members_csv(request: web.Request) -> web.Response:
    """``/members.csv``: every member of the tab (search and sort applied), not just one page."""
    data = await dashboard_data(request)
    tab, q, sort, descending, _ = _params(request)
    segment = request.query.get("segment") or None
    key = f"members_csv:{tab}:{sort}:{descending}:{segment}"
    body: bytes | None = None if q else data.memo.get(key)
    if body is None:
        rows = filtered(await tab_rows(data, tab), q, sort, descending)
        if segment is not None:
            rows = [m for m in rows if m.segment == segment]
        body = await asyncio.to_thread(_members_csv, rows)
        if not q:  # the whole list of a tab is what gets downloaded again; a search is not kept
            data.memo[key] = body
    return csv_download(f"members-{tab}-{data.range.end}.csv", body)


def _members_csv(rows: list[MemberRow]) -> bytes:
    return csv_bytes(
        ["member_id", "name", "platform", "days_since_active", "score", "messages_28d", "segment", "courses"],
        [
            [
                m.member_id,
                m.name,
                m.platform,
                "" if m.days_since_active is None else m.days_since_active,
                round(m.score, 2),
                m.messages_28d,
                m.segment or "",
                "; ".join(m.courses),
            ]
            for m in rows
        ],
    )


def _when(value: datetime | None, request: web.Request) -> str:
    if value is None:
        return "–"
    return value.astimezone(context(request).settings.community.tz).strftime("%Y-%m-%d %H:%M")


async def member_page(request: web.Request) -> web.Response:
    """``/members/<id>``: one member's daily activity, channels, purchases and nudges (404 for an unknown id)."""
    raw = request.match_info["member_id"]
    data = await dashboard_data(request)
    ctx = context(request)
    profile = None
    if raw.isdigit() and len(raw) < 19:
        profile = await asyncio.to_thread(
            member_profile, ctx.engine, ctx.community_id, int(raw), start=data.range.start, end=data.range.end
        )
    if profile is None:
        return error_page(request, 404, "No such member", f"There is no member {raw!r} in this community.")
    days = list(profile.days)
    figure = charts.bar_figure(
        "Daily activity",
        [d.day.isoformat() for d in days],
        [
            ("Messages", [d.messages for d in days]),
            ("Reactions given", [d.reactions_given for d in days]),
        ],
        stacked=False,
    )
    found = member_rows_by_id(data, profile.member_id)
    return render(
        request,
        "member.html",
        title=clean_name(profile.name),
        profile=profile,
        segment=segment_name(None if found is None else found.segment),
        score=fmt_number(None if found is None else found.score, 1),
        joined=_when(profile.joined_at, request),
        left=_when(profile.left_at, request),
        last_active=_when(profile.last_active_at, request),
        activity_figure=figure,
        channel_rows=[
            [
                {"text": c.name if c.parent is None else f"{c.parent} › {c.name}"},
                fmt_int(c.messages),
                fmt_int(c.days),
            ]
            for c in profile.channels
        ],
        purchase_rows=[
            [
                p.course,
                fmt_money(p.amount if p.currency == "XTR" else p.amount / 100, p.currency),
                _when(p.purchased_at, request),
                "refunded " + _when(p.refunded_at, request) if p.refunded_at else ("test" if p.is_test else "paid"),
            ]
            for p in profile.purchases
        ],
        nudge_rows=[
            [
                n.group,
                _when(n.decided_at, request),
                _when(n.sent_at, request) if n.group == "nudged" else "–",
                n.error or "",
                _when(n.reactivated_at, request) if n.reactivated_at else "not yet",
            ]
            for n in profile.nudges
        ],
        **page_values(request, data),
    )
