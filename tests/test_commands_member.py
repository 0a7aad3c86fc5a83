"""Member commands, driven through the real dispatcher over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.core.payments import PaymentError, verify_payload
from storage.events import Platform
from storage.ingest import IngestStore
from storage.models import Member
from tests.conftest import Events
from tests.helpers.fake_actions import NOW, SECRET, Bot, running_bot

pytestmark = pytest.mark.storage

ANN, BOB, CARL = "1001", "1002", "1003"


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    """Noon UTC on a day of 2024 (13:00 in Berlin: the same local day)."""
    return datetime(2024, month, day, hour, tzinfo=UTC)


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    async with running_bot(store) as running:
        yield running


@pytest.fixture
def tg() -> Events:
    return Events(Platform.TELEGRAM)


async def test_start_explains_the_bot_and_the_privacy_promise(bot: Bot) -> None:
    reply = await bot.run("/start")
    text = reply.text.plain()
    assert reply.private
    assert "testers" in text
    assert "never the text of your messages" in text
    for command in ("/stats", "/courses", "/nudges", "/mydata", "/forget"):
        assert command in text


async def test_help_lists_admin_commands_only_to_admins(bot: Bot) -> None:
    member_help = (await bot.run("/help")).text.plain()
    admin_help = (await bot.run("/help", admin=True)).text.plain()
    assert "/buy <course> – Buy a course" in member_help
    assert "/nudges [on|off]" in member_help
    assert "/report" not in member_help and "/grant" not in member_help
    assert "/grant <member> <course>" in admin_help
    assert "/refund <member> <course>" in admin_help


async def test_stats_of_a_member_with_nothing_recorded(bot: Bot) -> None:
    reply = await bot.run("/stats", user="424242")
    assert reply.private
    assert "Nothing recorded for you" in reply.text.plain()


async def test_stats_counts_days_reactions_streak_and_rank(bot: Bot, tg: Events) -> None:
    # Ann (today is Wed 20 March): messages on 18, 19, 20 (a 3-day streak), 16, 10 and 25 Feb; 10 Feb is outside
    # the 30 days. She reacts to Bob on the 15th (an active day without messages); Bob reacts to her on the 19th.
    ann_days = {20: 2, 19: 1, 18: 3, 16: 1, 10: 2}
    events = [tg.message(ANN, at=at(day), name="Ann") for day, n in ann_days.items() for _ in range(n)]
    events += [tg.message(ANN, at=at(25, month=2)), *[tg.message(ANN, at=at(10, month=2)) for _ in range(5)]]
    bob_msgs = [tg.message(BOB, at=at(1 + i % 19), name="Bob") for i in range(20)]
    events += bob_msgs
    events += [tg.message(CARL, at=at(5), name="Carl") for _ in range(10)]
    await bot.put(*events)
    ann_msg = events[0]
    await bot.put(
        tg.reaction(ANN, bob_msgs[0].message_id, at=at(15), author=BOB),
        tg.reaction(BOB, ann_msg.message_id, at=at(19), author=ANN),
    )
    text = (await bot.run("/stats", user=ANN)).text.plain()
    assert "Last 7 days: 7 messages on 5 active days" in text  # 14..20 March: 15 (reaction), 16, 18, 19, 20
    assert "Last 30 days: 10 messages on 7 active days" in text  # + 10 March and 25 February
    assert "Reactions (30 days): 1 given, 1 received" in text
    assert "Streak: 3 days in a row" in text
    assert "Rank: #2 of 3 active members" in text  # Bob has 20, Carl ties with 10 and is not ahead
    assert "Member since: Sat 10 Feb 2024" in text  # first seen: the oldest message


async def test_member_since_is_the_first_join_else_the_first_activity_not_the_import_batch(
    store: IngestStore, bot: Bot, tg: Events
) -> None:
    # One imported batch (no joins) whose earliest event is Ann's, on 10 Feb: every member created by it was
    # "first seen" on 10 Feb. Bob's first message is on 5 March; Carl joined on 1 March and posted on the 4th.
    store.write_batch(
        [
            tg.message(ANN, at=at(10, month=2), name="Ann"),
            tg.message(BOB, at=at(5), name="Bob"),
            tg.message(BOB, at=at(6), name="Bob"),
            tg.join(CARL, at=at(1)),
            tg.message(CARL, at=at(4), name="Carl"),
        ]
    )

    async def since(user: str) -> str:
        found = re.search(r"[Mm]ember since:? (\w+ \d+ \w+ \d+)", (await bot.run("/stats", user=user)).text.plain())
        assert found is not None
        return found.group(1)

    assert await since(ANN) == "Sat 10 Feb 2024"
    assert await since(BOB) == "Tue 5 Mar 2024"
    assert await since(CARL) == "Fri 1 Mar 2024"


async def test_streak_counts_from_yesterday_and_across_long_runs(bot: Bot, tg: Events) -> None:
    # 40 days in a row ending yesterday: longer than the 30 days read first, so the streak is read further back.
    await bot.put(*[tg.message(ANN, at=NOW - timedelta(days=d)) for d in range(1, 41)])
    text = (await bot.run("/stats", user=ANN)).text.plain()
    assert "Streak: 40 days in a row" in text
    assert "Last 7 days: 6 messages on 6 active days" in text


async def test_stats_lists_the_courses_a_member_owns_and_none_for_others(bot: Bot, tg: Events) -> None:
    await bot.put(tg.message(ANN, at=NOW - timedelta(days=1), name="Ann"), tg.message(BOB, at=NOW - timedelta(days=1)))
    await bot.writer.record_purchase(tg.purchase(ANN, "rust-intro", amount=350))
    await bot.writer.record_purchase(tg.purchase(CARL, "py-async"))  # Carl bought but never posted
    assert "Courses: Intro to Rust" in (await bot.run("/stats", user=ANN)).text.plain()
    assert "Courses:" not in (await bot.run("/stats", user=BOB)).text.plain()
    carl = (await bot.run("/stats", user=CARL)).text.plain()
    assert "Courses: Async Python" in carl and "Rank: post a message to get on the board" in carl


async def test_courses_marks_owned_and_offers_buy_buttons(bot: Bot, tg: Events) -> None:
    await bot.writer.record_purchase(tg.purchase(ANN, "rust-intro", amount=350))
    reply = await bot.run("/courses", user=ANN)
    text = reply.text.plain()
    assert "Async Python" in text and "Four weeks of asyncio." in text
    assert "Price: 500 Stars" in text  # Telegram sells in Stars
    discord = (await bot.run("/courses", user=ANN, platform=Platform.DISCORD)).text.plain()
    assert "Price: 49.00 EUR" in discord and "Price: in Discord's shop" in discord
    assert "✅ You own this course." in text
    assert [(b.kind, b.value) for b in reply.buttons] == [("command", "/buy py-async")]


async def test_buy_on_telegram_sends_a_signed_stars_invoice(bot: Bot) -> None:
    reply = await bot.run("/buy py-async", user=ANN)
    assert reply.invoice is not None
    invoice = reply.invoice
    assert (invoice.course_id, invoice.amount, invoice.currency, invoice.title) == (
        "py-async",
        500,
        "XTR",
        "Async Python",
    )
    assert len(invoice.payload.encode()) <= 128
    signed = verify_payload(SECRET, invoice.payload)
    assert (signed.course_id, signed.user_id, signed.amount) == ("py-async", ANN, 500)
    tampered = invoice.payload.replace(":500:", ":5:")
    with pytest.raises(PaymentError):
        verify_payload(SECRET, tampered)
    with pytest.raises(PaymentError):
        verify_payload("another secret", invoice.payload)


async def test_buy_refuses_unknown_and_owned_courses(bot: Bot, tg: Events) -> None:
    unknown = (await bot.run("/buy cobol")).text.plain()
    assert "There is no course 'cobol'" in unknown and "py-async, rust-intro" in unknown
    await bot.writer.record_purchase(tg.purchase(ANN, "py-async"))
    owned = await bot.run("/buy py-async", user=ANN)
    assert owned.invoice is None
    assert "You already own Async Python" in owned.text.plain()


async def test_buy_on_discord_uses_the_sku_or_the_checkout_page(bot: Bot) -> None:
    premium = await bot.run("/buy rust-intro", platform=Platform.DISCORD)
    assert [(b.kind, b.value) for b in premium.buttons] == [("premium", "667788")]
    checkout = await bot.run("/buy py-async", platform=Platform.DISCORD)
    assert [(b.kind, b.value) for b in checkout.buttons] == [("url", "https://example.org/checkout/py-async")]
    assert "an admin will record your payment" in checkout.text.plain()
    assert checkout.invoice is None


async def test_buy_without_a_signing_secret_says_sales_are_not_set_up(
    store: IngestStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(store, secret=None) as bot:
        reply = await bot.run("/buy py-async")
    assert reply.invoice is None
    assert "Sales are not set up" in reply.text.plain()
    assert any(r.levelname == "ERROR" and "COHORTBOT_SECRET" in r.getMessage() for r in caplog.records)


async def test_paysupport_explains_refunds(bot: Bot) -> None:
    text = (await bot.run("/paysupport")).text.plain()
    assert "/refund" in text and "payment reference" in text


async def test_nudges_off_persists_even_before_a_first_message(bot: Bot) -> None:
    assert "Reminder messages are on" in (await bot.run("/nudges", user="555")).text.plain()
    off = await bot.run("/nudges off", user="555", name="Newbie")
    assert "won't send you reminder messages" in off.text.plain()
    with bot.engine.connect() as conn:
        row = conn.execute(
            select(Member.nudges_opt_out, Member.display_name).where(Member.platform_user_id == "555")
        ).one()
    assert tuple(row) == (True, "Newbie")
    assert "Reminder messages are off" in (await bot.run("/nudges", user="555")).text.plain()
    await bot.run("/nudges ON", user="555")
    assert "Reminder messages are on" in (await bot.run("/nudges", user="555")).text.plain()
    bad = (await bot.run("/nudges maybe", user="555")).text.plain()
    assert "must be on or off" in bad


async def test_forget_needs_a_valid_token_then_deletes(bot: Bot, tg: Events) -> None:
    await bot.put(*[tg.message(ANN, at=at(20 - d)) for d in range(3)], tg.message(BOB, at=at(19)))
    await bot.writer.record_purchase(tg.purchase(ANN, "py-async"))
    ask = await bot.run("/forget", user=ANN)
    text = ask.text.plain()
    assert "messages (when, where, length" in text and ": 3" in text
    assert (
        "Your 1 purchase stays in the sales records for accounting, without your name; the bot will then no longer "
        "know that you own that course." in text
    )
    (button,) = ask.buttons
    assert button.kind == "command" and button.danger and button.value.startswith("/forget confirm ")

    refused = (await bot.run("/forget confirm 0123456789abcdef", user=ANN)).text.plain()
    assert "not valid or has expired; nothing was deleted" in refused
    # Ann's button is useless to Bob: the code is tied to the account.
    assert "not valid or has expired" in (await bot.run(button.value, user=BOB)).text.plain()
    assert "Last 30 days: 1 message on 1 active day" in (await bot.run("/stats", user=BOB)).text.plain()
    assert "Last 30 days: 3 messages" in (await bot.run("/stats", user=ANN)).text.plain()

    done = (await bot.run(button.value, user=ANN)).text.plain()
    assert "Everything stored about you is deleted" in done
    assert "deleted messages (when, where, length; the text only if the owner turned text storage on): 3" in done
    assert "kept without your name, for accounting: purchases: 1" in done
    assert "Nothing recorded for you" in (await bot.run("/stats", user=ANN)).text.plain()
    assert "Last 30 days: 1 message on 1 active day" in (await bot.run("/stats", user=BOB)).text.plain()


async def test_forget_confirm_without_the_code_says_the_code_is_missing(bot: Bot, tg: Events) -> None:
    await bot.put(tg.message(ANN, at=at(20)))
    await bot.run("/forget", user=ANN)
    answer = (await bot.run("/forget confirm", user=ANN)).text.plain()
    assert "The confirmation code is missing; nothing was deleted" in answer
    assert "not valid or has expired" not in answer
    assert "Last 30 days: 1 message on 1 active day" in (await bot.run("/stats", user=ANN)).text.plain()


async def test_forget_token_expires_after_a_day(bot: Bot, tg: Events) -> None:
    await bot.put(tg.message(ANN, at=at(20)))
    token_line = (await bot.run("/forget", user=ANN)).buttons[0].value
    bot.clock.advance(timedelta(days=1))  # tomorrow (UTC): yesterday's code still works ...
    ask_again = await bot.run("/forget", user=ANN)
    bot.clock.advance(timedelta(days=1))  # ... but not the day after
    assert "not valid or has expired" in (await bot.run(token_line, user=ANN)).text.plain()
    assert (
        "Everything stored about you is deleted" in (await bot.run(ask_again.buttons[0].value, user=ANN)).text.plain()
    )


async def test_mydata_attaches_the_export(bot: Bot, tg: Events) -> None:
    await bot.put(tg.message(ANN, at=at(20), name="Ann"))
    reply = await bot.run("/mydata", user=ANN)
    (attachment,) = reply.attachments
    assert attachment.filename == f"cohortbot-mydata-telegram-{ANN}.json"
    document = json.loads(attachment.data)
    assert document["member"]["platform_user_id"] == ANN
    assert len(document["tables"]["messages"]["rows"]) == 1
    assert "messages (when, where, length" in reply.text.plain()
    assert "Nothing is stored about you" in (await bot.run("/mydata", user="999")).text.plain()


def berlin(day: int, month: int, hour: int, minute: int) -> datetime:
    """A moment given in Berlin's local time (UTC+1 in February and March 2024)."""
    return datetime(2024, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=1)


async def test_stats_seven_day_window_starts_at_local_midnight_six_days_before_today(bot: Bot, tg: Events) -> None:
    # Today is Wed 20 March in Berlin: the 7 days are 14..20 March. Thu 14 March 00:30 is the first minute in;
    # Wed 13 March 23:30 is the last out (in UTC both are on 13 March).
    await bot.put(
        *[tg.message(ANN, at=berlin(14, 3, 0, 30)) for _ in range(2)],
        *[tg.message(ANN, at=berlin(13, 3, 23, 30)) for _ in range(3)],
    )
    text = (await bot.run("/stats", user=ANN)).text.plain()
    assert "Last 7 days: 2 messages on 1 active day" in text
    assert "Last 30 days: 5 messages on 2 active days" in text


async def test_stats_thirty_day_window_starts_at_local_midnight_29_days_before_today(bot: Bot, tg: Events) -> None:
    # The 30 days are 20 February .. 20 March: Tue 20 Feb 00:30 is in, Mon 19 Feb 23:30 is out; so are
    # reactions on either side of that edge.
    bob = tg.message(BOB, at=berlin(18, 2, 12, 0))
    await bot.put(
        bob,
        *[tg.message(ANN, at=berlin(20, 2, 0, 30)) for _ in range(4)],
        *[tg.message(ANN, at=berlin(19, 2, 23, 30)) for _ in range(5)],
    )
    await bot.put(
        tg.reaction(ANN, bob.message_id, at=berlin(20, 2, 0, 10), author=BOB, emoji="👍"),
        tg.reaction(ANN, bob.message_id, at=berlin(19, 2, 23, 50), author=BOB, emoji="🔥"),
    )
    text = (await bot.run("/stats", user=ANN)).text.plain()
    assert "Last 7 days: 0 messages on 0 active days" in text
    assert "Last 30 days: 4 messages on 1 active day" in text
    assert "Reactions (30 days): 1 given, 0 received" in text
