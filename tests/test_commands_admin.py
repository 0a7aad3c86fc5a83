"""Admin commands through the real dispatcher over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.core.commands.base import CapabilityError
from bot.core.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from bot.core.sales import record_sale
from storage.ingest import IngestStore
from storage.models import Member, Purchase, Refund
from tests.conftest import COMMUNITY, Events
from tests.helpers.fake_actions import NOW, Bot, FakeActions, running_bot
from tests.test_digest_preview import ID, png_size, seed_weeks

pytestmark = pytest.mark.storage

ADMIN, ANN = "9000", "1001"


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    async with running_bot(store) as running:
        yield running


def at(month: int, day: int) -> datetime:
    return datetime(2024, month, day, 12, tzinfo=UTC)


def ledger_rows(bot: Bot) -> list[tuple[str, str, int, str, bool]]:
    """(charge id, source, amount, currency, refunded) of every purchase."""
    with bot.engine.connect() as conn:
        rows = conn.execute(
            select(Purchase.charge_id, Purchase.source, Purchase.amount, Purchase.currency, Refund.id)
            .outerjoin(Refund, Refund.purchase_id == Purchase.id)
            .order_by(Purchase.id)
        ).all()
    return [(r[0], r[1], int(r[2]), r[3], r[4] is not None) for r in rows]


@pytest.mark.parametrize("command", ["/report", "/inactive", "/revenue", "/grant 1 py-async", "/refund 1 py-async"])
async def test_admin_commands_are_refused_to_members(bot: Bot, command: str) -> None:
    reply = await bot.run(command)
    assert "only for the community's admins" in reply.text.plain()
    assert not reply.attachments and ledger_rows(bot) == [] and bot.actions.grants == []


async def test_report_gives_key_figures_and_an_activity_chart(bot: Bot) -> None:
    await seed_weeks(bot)
    reply = await bot.run("/report", admin=True)
    text = reply.text.plain()
    assert text.startswith("testers: report as of Wed 20 Mar 2024")
    assert "Active: DAU 0 · WAU 1 · MAU 9" in text  # 14-20 March: ann only; 22 Feb-20 Mar: all but ivy
    assert "Messages: 4 in 7 days, 33 in 28 days" in text
    assert "Last week (2024-W11): 8 active (+2, +33% vs the week before), 1 new, 1 left, 21 messages" in text
    assert "<5" not in text  # admins see exact figures
    assert "Last 4 weeks (since Mon 26 Feb 2024): 500 Stars" in text
    assert reply.private
    (chart,) = reply.attachments
    assert chart.mime_type == "image/png" and png_size(chart.data) == (1200, 675)


async def test_inactive_lists_members_with_last_seen_days(bot: Bot) -> None:
    await seed_weeks(bot)
    text = (await bot.run("/inactive", admin=True)).text.plain()
    at_risk, others = text.split("Other inactive members")
    # At risk as of 20 March: active 8 Feb - 6 Mar, silent since. Both are inactive too, and listed once.
    assert at_risk.startswith("At risk: active 2–6 weeks ago, silent for the last 2 weeks (2)")
    assert "• Fay (telegram) – last seen Tue 5 Mar 2024" in at_risk
    assert "• Ivy (telegram) – last seen Tue 20 Feb 2024" in at_risk
    assert others.startswith(": silent for 14+ days (not counting those at risk) (0)")
    assert "Nobody else" in others
    assert "Bob" not in text and "Hal" not in text  # active lately; left


async def test_inactive_caps_long_lists(bot: Bot) -> None:
    ev = Events(Platform.TELEGRAM)
    await bot.put(*[ev.message(str(3000 + i), at=at(1, 10), name=f"Quiet {i:02d}") for i in range(23)])
    text = (await bot.run("/inactive", admin=True)).text.plain()
    assert "Other inactive members: silent for 14+ days (not counting those at risk) (23)" in text
    assert text.count("• Quiet") == 20
    assert "… and 3 more" in text
    assert "At risk: active 2–6 weeks ago, silent for the last 2 weeks (0)" in text  # silent since January


async def test_revenue_by_window_course_and_currency(bot: Bot) -> None:
    def sale(user: str, course: str, charge: str, amount: int, currency: str, when: datetime) -> PurchaseEvent:
        source = PurchaseSource.TELEGRAM_STARS if currency == "XTR" else PurchaseSource.GRANT
        return PurchaseEvent(
            Platform.TELEGRAM, COMMUNITY, charge, MemberRef(user), course, amount, currency, when, source
        )

    # Now is Wed 20 March: this week since Mon 18 March, the last 4 weeks since Mon 26 February.
    await bot.writer.record_purchase(sale("1", "py-async", "a", 500, "XTR", at(3, 19)))
    await bot.writer.record_purchase(sale("2", "py-async", "b", 4900, "EUR", at(3, 5)))
    await bot.writer.record_refund(RefundEvent(Platform.TELEGRAM, COMMUNITY, "b", at(3, 19)))
    await bot.writer.record_purchase(sale("3", "rust-intro", "c", 350, "XTR", at(1, 10)))
    text = (await bot.run("/revenue", admin=True)).text.plain()
    this_week, four_weeks, all_time = text.split("\n\n")[1:4]
    assert this_week.splitlines() == [
        "This week (since Mon 18 Mar 2024): −49.00 EUR, 500 Stars",
        "• Async Python: 0 sold to 0 buyers, −49.00 EUR net, 1 refunded (49.00 EUR)",
        "• Async Python: 1 sold to 1 buyer, 500 Stars net",
    ]
    assert four_weeks.splitlines()[0] == "Last 4 weeks (since Mon 26 Feb 2024): 0.00 EUR, 500 Stars"
    assert all_time.splitlines() == [
        "All time: 0.00 EUR, 850 Stars",
        "• Async Python: 1 sold to 1 buyer, 0.00 EUR net, 1 refunded (49.00 EUR)",
        "• Async Python: 1 sold to 1 buyer, 500 Stars net",
        "• Intro to Rust: 1 sold to 1 buyer, 350 Stars net",
    ]
    assert "Conversion: 2 of 3 members own a course (66.7% of members)" in text
    assert "Refunds: 1 of 3 purchases (33.3%)" in text


async def test_revenue_without_sales(bot: Bot) -> None:
    assert "No sales recorded yet" in (await bot.run("/revenue", admin=True)).text.plain()


async def test_grant_then_refund_records_both_and_moves_access(bot: Bot) -> None:
    await bot.put(Events(Platform.TELEGRAM).message(ANN, name="Ann", at=at(3, 19)))
    granted = (await bot.run("/grant @ann py-async", admin=True, user=ADMIN)).text.plain()
    assert "Recorded: Ann (id 1001) owns Async Python (49.00 EUR, granted by you)." in granted
    assert "Access given. Invite: https://t.me/+x" in granted
    assert bot.actions.grants == [(ANN, "py-async")]
    (purchase,) = ledger_rows(bot)
    assert purchase[0].startswith(f"grant:telegram:{ANN}:py-async:")
    assert purchase[1:] == ("grant", 4900, "EUR", False)
    with bot.engine.connect() as conn:
        admin_id = conn.execute(select(Member.id).where(Member.platform_user_id == ADMIN)).scalar_one()
        assert conn.execute(select(Purchase.granted_by_member_id)).scalar_one() == admin_id

    again = (await bot.run(f"/grant {ANN} py-async", admin=True, user=ADMIN)).text.plain()
    assert "already owns Async Python; nothing recorded" in again
    assert len(ledger_rows(bot)) == 1 and len(bot.actions.grants) == 1
    assert "You already own Async Python" in (await bot.run("/buy py-async", user=ANN)).text.plain()

    refunded = (await bot.run(f"/refund {ANN} py-async", admin=True, user=ADMIN)).text.plain()
    assert "Refunded: Ann (id 1001)'s purchase of Async Python." in refunded
    assert "Return the money the way it was paid" in refunded
    assert "Access removed." in refunded
    assert bot.actions.refunds == []  # not a Stars payment: nothing for the platform to return
    assert bot.actions.revokes == [(ANN, "py-async")]
    assert ledger_rows(bot)[0][1:] == ("grant", 4900, "EUR", True)
    again_refund = (await bot.run(f"/refund {ANN} py-async", admin=True, user=ADMIN)).text.plain()
    assert "no live purchase of 'py-async'" in again_refund
    assert len(bot.actions.revokes) == 1


async def test_grant_of_a_stars_only_course_records_zero(bot: Bot) -> None:
    text = (await bot.run("/grant 4242 rust-intro", admin=True, user=ADMIN)).text.plain()
    assert "Recorded: user 4242 owns Intro to Rust (0 Stars, granted by you)." in text
    assert ledger_rows(bot)[0][1:] == ("grant", 0, "XTR", False)


async def test_grant_reports_access_problems(bot: Bot) -> None:
    from bot.core.commands.base import AccessResult

    actions = FakeActions(grant_result=AccessResult(ok=False, problem="the bot cannot invite to the course chat"))
    text = (await bot.run("/grant 4242 py-async", admin=True, user=ADMIN, actions=actions)).text.plain()
    assert "Recorded:" in text
    assert "⚠ Access problem: the bot cannot invite to the course chat" in text
    assert len(ledger_rows(bot)) == 1


async def test_grant_refuses_unknown_or_ambiguous_members_and_courses(bot: Bot) -> None:
    ev = Events(Platform.TELEGRAM)
    await bot.put(ev.message("11", name="Sam"), ev.message("12", name="sam"))
    ambiguous = (await bot.run("/grant @sam py-async", admin=True)).text.plain()
    assert "Several members are called '@sam'" in ambiguous and "Usage: /grant <member> <course>" in ambiguous
    assert "No member called '@zed'" in (await bot.run("/grant @zed py-async", admin=True)).text.plain()
    assert "There is no course 'cobol'" in (await bot.run("/grant 11 cobol", admin=True)).text.plain()
    assert "/grant needs a course" in (await bot.run("/grant 11", admin=True)).text.plain()
    assert ledger_rows(bot) == [] and bot.actions.grants == []


async def test_refund_of_a_stars_purchase_returns_the_stars_first(bot: Bot) -> None:
    stars = PurchaseEvent(
        Platform.TELEGRAM, COMMUNITY, "tg-1", MemberRef(ANN), "py-async", 500, "XTR", NOW, PurchaseSource.TELEGRAM_STARS
    )
    await record_sale(bot.dispatcher, stars, bot.actions)
    text = (await bot.run(f"/refund {ANN} py-async", admin=True, user=ADMIN)).text.plain()
    assert bot.actions.refunds == [(ANN, "tg-1")]
    assert "500 Stars returned to the member by Telegram." in text
    assert bot.actions.revokes == [(ANN, "py-async")]
    assert ledger_rows(bot) == [("tg-1", "telegram_stars", 500, "XTR", True)]


async def test_refund_the_platform_cannot_make_changes_nothing(bot: Bot) -> None:
    stars = PurchaseEvent(
        Platform.TELEGRAM, COMMUNITY, "tg-1", MemberRef(ANN), "py-async", 500, "XTR", NOW, PurchaseSource.TELEGRAM_STARS
    )
    await record_sale(bot.dispatcher, stars, bot.actions)
    for error in (CapabilityError("no refunds here"), RuntimeError("CHARGE_ALREADY_REFUNDED")):
        actions = FakeActions(refund_error=error)
        text = (await bot.run(f"/refund {ANN} py-async", admin=True, actions=actions)).text.plain()
        assert str(error) in text and "Nothing" in text
        assert actions.revokes == []
    assert ledger_rows(bot) == [("tg-1", "telegram_stars", 500, "XTR", False)]


async def test_refund_of_a_course_never_bought(bot: Bot) -> None:
    text = (await bot.run(f"/refund {ID['ann']} rust-intro", admin=True)).text.plain()
    assert "has no live purchase of 'rust-intro'" in text


async def test_members_are_one_number_in_report_and_revenue(bot: Bot) -> None:
    tg = Events(Platform.TELEGRAM)
    # Six people posted in March; one of them left; one of the five still here bought a course.
    await bot.put(*[tg.message(str(2000 + i), at=at(3, 4 + i), name=f"M{i}") for i in range(6)])
    await bot.put(tg.leave("2005", at=at(3, 12)))
    await bot.writer.record_purchase(
        PurchaseEvent(
            Platform.TELEGRAM,
            COMMUNITY,
            "x1",
            MemberRef("2000"),
            "py-async",
            500,
            "XTR",
            at(3, 11),
            PurchaseSource.TELEGRAM_STARS,
        )
    )
    # A reaction to a message the bot never saw stores its author, who did nothing here: not a member either.
    await bot.put(tg.reaction("2001", "unknown-message", at=at(3, 13), author="4242"))
    report = (await bot.run("/report", user="9000", admin=True)).text.plain()
    with bot.engine.connect() as conn:
        stored = set(conn.execute(select(Member.platform_user_id)).scalars())
    assert "4242" in stored  # stored, yet not counted
    assert "Members: 5\n" in report
    revenue = (await bot.run("/revenue", user="9000", admin=True)).text.plain()
    assert "Conversion: 1 of 5 members owns a course (20.0% of members)" in revenue
