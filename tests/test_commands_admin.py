"""Admin commands through the real dispatcher over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.core.ports import CapabilityError
from bot.core.sales import record_sale, refuse_payment
from storage.events import MemberRef, MessageEvent, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ingest import IngestStore
from storage.models import Member, Purchase, Refund
from tests.conftest import COMMUNITY, Events
from tests.helpers.fake_actions import NOW, Bot, FakeActions, running_bot, two_course_settings
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


async def test_report_says_retention_and_activation_in_the_digest_s_words(bot: Bot) -> None:
    # One wording for /report and the weekly digest (bot.core.views; the digest's is checked in test_digest_preview).
    await seed_weeks(bot)
    lines = (await bot.run("/report", admin=True)).text.plain().splitlines()
    assert "Retention: of the 9 who joined in 2024-W01, 0% came back in their second week." in lines
    assert "Activation: 0% of the 1 recent joiners posted 3+ messages in their first 7 days." in lines


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


async def confirmed(bot: Bot, line: str, *, user: str = ADMIN, actions: FakeActions | None = None) -> str:
    """Run an admin command that asks for confirmation, check it changed nothing yet, press its button."""
    recorded, returned = ledger_rows(bot), list((actions or bot.actions).refunds)
    ask = await bot.run(line, admin=True, user=user, actions=actions)
    (button,) = ask.buttons
    assert "Refund this payment?" in ask.text.plain() and button.danger
    assert ledger_rows(bot) == recorded and (actions or bot.actions).refunds == returned
    return (await bot.run(button.value, admin=True, user=user, actions=actions)).text.plain()


def with_username(ev: Events, user: str, name: str, username: str) -> MessageEvent:
    message = ev.message(user, name=name, at=at(3, 19))
    return replace(message, author=MemberRef(user, display_name=name, username=username))


async def test_grant_then_refund_records_both_and_moves_access(bot: Bot) -> None:
    await bot.put(with_username(Events(Platform.TELEGRAM), ANN, "Ann", "ann"))
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

    refunded = await confirmed(bot, f"/refund {ANN} py-async")
    assert "Refunded the purchase of Async Python by Ann (id 1001)." in refunded
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


async def test_grant_of_a_monthly_course_gives_one_period_and_no_subscription(store: IngestStore) -> None:
    monthly = two_course_settings(
        '\n[[courses]]\nid = "club"\ntitle = "Review club"\nbilling = "monthly"\nprice_stars = 250\n'
        "telegram_chat_id = -100555\n"
    )
    async with running_bot(store, settings=monthly) as bot:
        text = (await bot.run("/grant 4242 club", admin=True, user=ADMIN)).text.plain()
        assert "Recorded: user 4242 owns Review club" in text
        assert "A monthly course: this gives 30 days of access, until Fri 19 Apr 2024." in text
        assert bot.actions.grants == [("4242", "club")]
        with bot.engine.connect() as conn:
            assert conn.execute(select(Purchase.access_ends_at)).scalar_one() == NOW + timedelta(days=30)
        # Nothing renews a grant: it is not a subscription the member could cancel.
        assert "You have no subscriptions" in (await bot.run("/subscriptions", user="4242")).text.plain()
        # Once the period is over the member no longer owns it, and may be granted again.
        bot.clock.advance(timedelta(days=31))
        again = (await bot.run("/grant 4242 club", admin=True, user=ADMIN)).text.plain()
        assert "Recorded: user 4242 owns Review club" in again


async def test_grant_reports_access_problems(bot: Bot) -> None:
    from bot.core.ports import AccessResult

    actions = FakeActions(grant_result=AccessResult(ok=False, problem="the bot cannot invite to the course chat"))
    text = (await bot.run("/grant 4242 py-async", admin=True, user=ADMIN, actions=actions)).text.plain()
    assert "Recorded:" in text
    assert "⚠ Access problem: the bot cannot invite to the course chat" in text
    assert len(ledger_rows(bot)) == 1


async def test_grant_refuses_unknown_or_ambiguous_members_and_courses(bot: Bot) -> None:
    ev = Events(Platform.TELEGRAM)
    # @sam changed hands: both accounts were last seen with it. A third renamed themself "sam".
    await bot.put(with_username(ev, "11", "Sam", "sam"), with_username(ev, "12", "Samantha", "Sam"))
    await bot.put(ev.message("13", name="sam"))
    ambiguous = (await bot.run("/grant @sam py-async", admin=True)).text.plain()
    assert "Several members have had the username @sam: id 11 (Sam), id 12 (Samantha)" in ambiguous
    assert "Usage: /grant <member> <course>" in ambiguous
    assert "No member with the username @zed" in (await bot.run("/grant @zed py-async", admin=True)).text.plain()
    assert "There is no course 'cobol'" in (await bot.run("/grant 11 cobol", admin=True)).text.plain()
    assert "/grant needs a course" in (await bot.run("/grant 11", admin=True)).text.plain()
    assert ledger_rows(bot) == [] and bot.actions.grants == []


async def test_admin_commands_never_take_a_display_name_for_a_member(bot: Bot) -> None:
    ev = Events(Platform.TELEGRAM)
    # Mallory renamed themself "bob"; the real Bob's account has the username @bob.
    await bot.put(ev.message("66", name="bob"), with_username(ev, "77", "Bob Real", "bob"))
    for line in ("/grant @bob py-async", "/grant bob py-async"):
        await bot.run(line, admin=True, user=ADMIN)
    assert bot.actions.grants == [("77", "py-async")]  # "/grant bob" (no @, no id) is refused outright
    refused = (await bot.run("/grant bob py-async", admin=True, user=ADMIN)).text.plain()
    assert "must be a member's numeric id, an @username, or a mention" in refused


async def stars_sale(bot: Bot, charge: str = "tg-1", user: str = ANN) -> None:
    stars = PurchaseEvent(
        Platform.TELEGRAM,
        COMMUNITY,
        charge,
        MemberRef(user),
        "py-async",
        500,
        "XTR",
        NOW,
        PurchaseSource.TELEGRAM_STARS,
    )
    await record_sale(bot.dispatcher, stars, bot.actions)


async def test_refund_of_a_stars_purchase_returns_the_stars_first(bot: Bot) -> None:
    await stars_sale(bot)
    text = await confirmed(bot, f"/refund {ANN} py-async")
    assert bot.actions.refunds == [(ANN, "tg-1")]
    assert "500 Stars returned to the member by Telegram." in text
    assert bot.actions.revokes == [(ANN, "py-async")]
    assert ledger_rows(bot) == [("tg-1", "telegram_stars", 500, "XTR", True)]


async def test_refund_the_platform_cannot_make_changes_nothing(bot: Bot) -> None:
    await stars_sale(bot)
    for error in (CapabilityError("no refunds here"), RuntimeError("PAYMENT_EXPIRED")):
        actions = FakeActions(refund_error=error)
        text = await confirmed(bot, f"/refund {ANN} py-async", actions=actions)
        assert str(error) in text and "Nothing" in text
        assert actions.revokes == []
    assert ledger_rows(bot) == [("tg-1", "telegram_stars", 500, "XTR", False)]


async def test_only_the_admin_who_asked_can_confirm_a_refund_and_only_once(bot: Bot) -> None:
    await stars_sale(bot)
    ask = await bot.run(f"/refund {ANN} py-async", admin=True, user=ADMIN)
    (button,) = ask.buttons
    assert len(button.value.encode()) <= 64  # fits Telegram's callback data
    other = (await bot.run(button.value, admin=True, user="9001")).text.plain()
    assert "made for another admin, or it has expired" in other
    assert "only for the community's admins" in (await bot.run(button.value, user=ANN)).text.plain()
    assert bot.actions.refunds == [] and ledger_rows(bot)[0][4] is False
    # Two presses at once (a double tap, or a replayed update): one refund.
    first, second = await asyncio.gather(
        bot.run(button.value, admin=True, user=ADMIN), bot.run(button.value, admin=True, user=ADMIN)
    )
    texts = sorted([first.text.plain(), second.text.plain()])
    assert "Refunded the purchase of Async Python by user 1001." in texts[0]
    assert "already refunded; nothing changed" in texts[1]
    assert bot.actions.refunds == [(ANN, "tg-1")] and bot.actions.revokes == [(ANN, "py-async")]
    replay = (await bot.run(button.value, admin=True, user=ADMIN)).text.plain()
    assert "already refunded; nothing changed" in replay and len(bot.actions.refunds) == 1


async def test_a_refund_confirmation_expires(bot: Bot) -> None:
    await stars_sale(bot)
    (button,) = (await bot.run(f"/refund {ANN} py-async", admin=True, user=ADMIN)).buttons
    bot.clock.advance(timedelta(days=2))
    stale = (await bot.run(button.value, admin=True, user=ADMIN)).text.plain()
    assert "has expired" in stale and bot.actions.refunds == [] and ledger_rows(bot)[0][4] is False
    forged = (await bot.run("/refund confirm p1.0000000000000000", admin=True, user=ADMIN)).text.plain()
    assert "not valid" in forged and bot.actions.refunds == []


async def test_refund_by_charge_id_covers_recorded_and_unmatched_payments(bot: Bot) -> None:
    await stars_sale(bot, charge="tg-7")
    text = await confirmed(bot, "/refund charge tg-7")
    assert bot.actions.refunds == [(ANN, "tg-7")] and "500 Stars returned" in text
    # A payment that matched no course: kept, and the owners' notice says how to refund it.
    refused = await refuse_payment(
        bot.dispatcher,
        bot.actions,
        charge_id="stx-odd",
        payer=MemberRef("4242"),
        amount=75,
        currency="XTR",
        received_at=NOW,
        problem="not a cohortbot invoice payload",
        refund=False,
    )
    assert refused is not None and not refused.refunded
    assert "To refund it: /refund charge stx-odd" in refused.owners.plain()
    assert bot.actions.refunds == [(ANN, "tg-7")]  # nothing went back on its own
    done = await confirmed(bot, "/refund charge stx-odd")
    assert "Refunded: payment stx-odd of user 4242." in done and "75 Stars returned" in done
    assert bot.actions.refunds == [(ANN, "tg-7"), ("4242", "stx-odd")]
    assert "already refunded" in (await bot.run("/refund charge stx-odd", admin=True, user=ADMIN)).text.plain()
    unknown = (await bot.run("/refund charge nope", admin=True, user=ADMIN)).text.plain()
    assert "No telegram payment with the charge id 'nope'" in unknown
    assert len(ledger_rows(bot)) == 1


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
