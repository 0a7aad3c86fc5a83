"""Live figures: today's numbers, pushed to open pages as server-sent events on ``GET /live``.

Inside ``cohortbot run`` the writer calls :meth:`LiveHub.notify` after every commit; the hub wakes every open
stream at most once per :data:`DEBOUNCE_SECONDS` (a busy community commits four times a second), and each stream
sends the figures, computed once per change for all streams. Standalone (``cohortbot dashboard serve``) nothing
commits in-process, so streams re-read the figures every ``[dashboard] refresh_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from aiohttp import web
from sqlalchemy import and_, func, select

from analytics.formatting import fmt_money, money_digits
from bot.web.context import WebContext
from storage.member_profile import day_totals
from storage.models import Purchase, Refund
from storage.writer import Commit

DEBOUNCE_SECONDS: Final = 0.2
# A comment line now and then keeps proxies from closing an idle stream, and notices a gone browser.
HEARTBEAT_SECONDS: Final = 15.0


@dataclass(frozen=True, slots=True)
class TodayFigures:
    """Today's figures (community-local day) for the Overview.

    Attributes:
        day: Today in the community's time zone.
        messages: Human messages today.
        reactions: Reactions today.
        active_members: Members who posted or reacted today.
        joins: Members who joined today.
        leaves: Members who left today.
        purchases: Purchases today (not refunded, not test purchases).
        revenue: Today's sales per currency, formatted ("49.00 EUR", "500 Stars").
        last_event_at: The newest activity stored, if any.
    """

    day: date
    messages: int
    reactions: int
    active_members: int
    joins: int
    leaves: int
    purchases: int
    revenue: dict[str, str] = field(default_factory=dict)
    last_event_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON-ready values (day and time as ISO 8601)."""
        return {
            "day": self.day.isoformat(),
            "messages": self.messages,
            "reactions": self.reactions,
            "active_members": self.active_members,
            "joins": self.joins,
            "leaves": self.leaves,
            "purchases": self.purchases,
            "revenue": dict(self.revenue),
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at is not None else None,
        }


def today_figures(ctx: WebContext) -> TodayFigures:
    """Read today's figures from the rollups and the ledger (blocking; call it with ``asyncio.to_thread``).

    Args:
        ctx: The web context (database, clock, community and its time zone).
    """
    tz = ctx.settings.community.tz
    now = ctx.clock.now()
    today = now.astimezone(tz).date()
    start = datetime.combine(today, time(), tz)
    end = datetime.combine(today + timedelta(days=1), time(), tz)
    cid = ctx.community_id
    totals = day_totals(ctx.engine, cid, today)
    with ctx.engine.connect() as conn:
        sales = conn.execute(
            select(Purchase.currency, func.count(), func.sum(Purchase.amount))
            .outerjoin(Refund, Refund.purchase_id == Purchase.id)
            .where(
                Purchase.community_id == cid,
                Purchase.purchased_at >= start,
                Purchase.purchased_at < end,
                Purchase.is_test.is_(False),
                Refund.id.is_(None),
            )
            .group_by(Purchase.currency)
        ).all()
        last_sale = conn.execute(
            select(func.max(Purchase.purchased_at)).where(and_(Purchase.community_id == cid))
        ).scalar_one()
    revenue = {
        currency: fmt_money(Decimal(int(amount or 0)).scaleb(-money_digits(currency)), currency)
        for currency, _count, amount in sorted(sales)
    }
    newest = [moment for moment in (totals.last_event_at, last_sale) if moment is not None]
    return TodayFigures(
        day=today,
        messages=totals.messages,
        reactions=totals.reactions,
        active_members=totals.active_members,
        joins=totals.joins,
        leaves=totals.leaves,
        purchases=sum(int(count) for _currency, count, _amount in sales),
        revenue=revenue,
        last_event_at=max(newest) if newest else None,
    )


class LiveHub:
    """Wakes the open ``/live`` streams when the data changed, and computes the figures once per change."""

    def __init__(self, ctx: WebContext) -> None:
        """Create a hub for one web application.

        Args:
            ctx: The web context; ``ctx.writer`` present means in-process (pushed), absent means standalone (polled).
        """
        self.ctx = ctx
        self._version = 0
        self._changed = asyncio.Condition()
        self._pending: asyncio.TimerHandle | None = None
        self._last_fire = float("-inf")
        self._closed = False
        self._cached: tuple[int, TodayFigures] | None = None
        self._computing: asyncio.Lock | None = None
        # The loop keeps only weak references to tasks: hold each wake-up until it has run.
        self._wakes: set[asyncio.Task[None]] = set()

    @property
    def poll_seconds(self) -> float | None:
        """Standalone: how often streams re-read the figures; None when commits push them."""
        return None if self.ctx.writer is not None else float(self.ctx.settings.dashboard.refresh_seconds)

    def notify(self, commit: Commit | None = None) -> None:
        """Data was committed: refresh the streams now, or at most every :data:`DEBOUNCE_SECONDS`. Call on the loop.

        Args:
            commit: What the writer committed (the live figures are few: every commit refreshes all of them).
        """
        if self._closed or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        # The first commit after a quiet spell goes out at once; a burst is coalesced into one push per interval.
        delay = max(0.0, self._last_fire + DEBOUNCE_SECONDS - loop.time())
        self._pending = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last_fire = asyncio.get_running_loop().time()
        self._version += 1
        task = asyncio.get_running_loop().create_task(self._wake())
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        """End every stream (server shutdown), so stopping the server never waits on an open page."""
        self._closed = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        await self._wake()

    async def figures(self) -> TodayFigures:
        """Today's figures for the current data version (computed once, shared by all streams)."""
        if self._computing is None:
            self._computing = asyncio.Lock()
        async with self._computing:
            version = self._version
            if self._cached is not None and self._cached[0] == version:
                return self._cached[1]
            result = await asyncio.to_thread(today_figures, self.ctx)
            self._cached = (version, result)
            return result

    async def wait_for_change(self, within: float) -> bool:
        """Wait until the data changed or the hub closed (True), or ``within`` seconds passed (False)."""
        seen = self._version
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self._closed or self._version != seen), within)
        return self._closed or self._version != seen

    def expire(self) -> None:
        """Forget the cached figures (standalone polling: the database may have changed behind our back)."""
        self._version += 1

    def is_closed(self) -> bool:
        """True once the server is shutting down."""
        return self._closed


LIVE: web.AppKey[LiveHub] = web.AppKey("cohortbot_live", LiveHub)


def _event(figures: TodayFigures) -> bytes:
    return f"event: today\ndata: {json.dumps(figures.as_json(), separators=(',', ':'))}\n\n".encode()


async def live_stream(request: web.Request) -> web.StreamResponse:
    """``GET /live``: ``event: today`` now, then after every change (in-process) or every refresh (standalone)."""
    hub = request.app[LIVE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            # nginx buffers responses by default, which would hold the events back.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    poll = hub.poll_seconds
    try:
        await response.write(_event(await hub.figures()))
        while not hub.is_closed():
            if poll is None:
                changed = await hub.wait_for_change(HEARTBEAT_SECONDS)
                if hub.is_closed():
                    break
                await response.write(_event(await hub.figures()) if changed else b": keepalive\n\n")
            else:
                await hub.wait_for_change(poll)
                if hub.is_closed():
                    break
                hub.expire()
                await response.write(_event(await hub.figures()))
    except ConnectionResetError:
        # The browser went away: nothing to tell anyone.
        return response
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response


async def _close_hub(app: web.Application) -> None:
    await app[LIVE].close()


def add_live_routes(app: web.Application, ctx: WebContext) -> LiveHub:
    """Install ``/live`` and its hub; in-process, the writer's commits drive it.

    Returns:
        The hub (its ``notify`` is the writer's commit listener).
    """
    hub = LiveHub(ctx)
    app[LIVE] = hub
    if ctx.writer is not None:
        ctx.writer.add_commit_listener(hub.notify)
    app.router.add_get("/live", live_stream)
    app.on_shutdown.append(_close_hub)
    return hub
