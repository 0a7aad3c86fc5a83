"""The event vocabulary: what adapters may build, and what a malformed payload is told when it may not."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storage.events import (
    ChannelRef,
    CommandInvocation,
    Event,
    EventError,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    PurchaseEvent,
    PurchaseSource,
    ReactionEvent,
    RefundEvent,
    text_facts,
)

AT = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
ALICE = MemberRef("42", display_name="Alice")
GENERAL = ChannelRef("c1", name="#general")


def message(**overrides: Any) -> MessageEvent:
    fields: dict[str, Any] = {
        "platform": Platform.DISCORD,
        "community": "testers",
        "message_id": "m1",
        "channel": GENERAL,
        "author": ALICE,
        "occurred_at": AT,
        "length": 12,
    }
    fields.update(overrides)
    return MessageEvent(**fields)


def reaction(**overrides: Any) -> ReactionEvent:
    fields: dict[str, Any] = {
        "platform": Platform.DISCORD,
        "community": "testers",
        "channel": GENERAL,
        "message_id": "m1",
        "member": ALICE,
        "emoji": "👍",
        "occurred_at": AT,
    }
    fields.update(overrides)
    return ReactionEvent(**fields)


def purchase(**overrides: Any) -> PurchaseEvent:
    fields: dict[str, Any] = {
        "platform": Platform.TELEGRAM,
        "community": "testers",
        "charge_id": "ch-1",
        "member": ALICE,
        "course_id": "py-async",
        "amount": 500,
        "currency": "XTR",
        "occurred_at": AT,
        "source": PurchaseSource.TELEGRAM_STARS,
    }
    fields.update(overrides)
    return PurchaseEvent(**fields)


def refund(**overrides: Any) -> RefundEvent:
    fields: dict[str, Any] = {
        "platform": Platform.TELEGRAM,
        "community": "testers",
        "charge_id": "ch-1",
        "occurred_at": AT,
    }
    fields.update(overrides)
    return RefundEvent(**fields)


def command(**overrides: Any) -> CommandInvocation:
    fields: dict[str, Any] = {
        "platform": Platform.TELEGRAM,
        "community": "testers",
        "name": "stats",
        "invoker": ALICE,
        "occurred_at": AT,
    }
    fields.update(overrides)
    return CommandInvocation(**fields)


def joined(**overrides: Any) -> MemberJoined:
    fields: dict[str, Any] = {
        "platform": Platform.TELEGRAM,
        "community": "testers",
        "member": ALICE,
        "occurred_at": AT,
    }
    fields.update(overrides)
    return MemberJoined(**fields)


def left(**overrides: Any) -> MemberLeft:
    fields: dict[str, Any] = {
        "platform": Platform.TELEGRAM,
        "community": "testers",
        "member": ALICE,
        "occurred_at": AT,
    }
    fields.update(overrides)
    return MemberLeft(**fields)


BUILDERS: dict[str, Callable[..., Event]] = {
    "message": message,
    "reaction": reaction,
    "joined": joined,
    "left": left,
    "purchase": purchase,
    "refund": refund,
    "command": command,
}
every_event = pytest.mark.parametrize("build", list(BUILDERS.values()), ids=list(BUILDERS))


# --- timestamps ---


@every_event
def test_naive_timestamp_is_rejected_naming_the_field(build: Callable[..., Event]) -> None:
    with pytest.raises(EventError, match=r"^occurred_at: .*naive 2024-03-04T09:30:00"):
        build(occurred_at=datetime(2024, 3, 4, 9, 30))


@every_event
def test_timestamp_that_is_not_a_datetime_is_rejected(build: Callable[..., Event]) -> None:
    with pytest.raises(EventError, match=r"^occurred_at: expected a datetime"):
        build(occurred_at="2024-03-04T09:30:00Z")


def test_event_errors_are_value_errors() -> None:
    # Adapters catch ValueError around payload parsing; EventError must be one.
    with pytest.raises(ValueError):
        message(message_id="")


@every_event
def test_other_zones_are_stored_as_utc(build: Callable[..., Event]) -> None:
    berlin = datetime(2024, 3, 4, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 09:30 UTC (CET, +01:00)
    event = build(occurred_at=berlin)
    stored: datetime = event.occurred_at  # type: ignore[union-attr]
    assert stored.utcoffset() == timedelta(0)
    assert (stored.hour, stored.minute) == (9, 30)
    assert stored == AT


@every_event
def test_equal_instants_in_different_zones_make_equal_events(build: Callable[..., Event]) -> None:
    new_york = AT.astimezone(ZoneInfo("America/New_York"))
    plus_five_thirty = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    variants = {build(occurred_at=AT), build(occurred_at=new_york), build(occurred_at=plus_five_thirty)}
    assert len(variants) == 1
    assert build(occurred_at=new_york) == build(occurred_at=plus_five_thirty)


def test_different_instants_make_different_events() -> None:
    assert message(occurred_at=AT) != message(occurred_at=AT + timedelta(milliseconds=1))


def test_dst_transition_converts_with_the_right_offset() -> None:
    # Berlin switched to summer time on 2024-03-31 at 02:00 local: 03:30 that day is +02:00.
    summer = message(occurred_at=datetime(2024, 3, 31, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")))
    assert summer.occurred_at == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


# --- ids and values ---


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: message(message_id=""), "message_id"),
        (lambda: reaction(message_id=""), "message_id"),
        (lambda: purchase(charge_id=""), "charge_id"),
        (lambda: purchase(course_id=""), "course_id"),
        (lambda: refund(charge_id=""), "charge_id"),
        (lambda: MemberRef(""), "user_id"),
        (lambda: ChannelRef(""), "channel_id"),
        (lambda: ChannelRef("c1", thread_id=""), "thread_id"),
        (lambda: ChannelRef("c1", parent_id=""), "parent_id"),
    ],
    ids=[
        "message",
        "reaction",
        "purchase-charge",
        "purchase-course",
        "refund",
        "member",
        "channel",
        "thread",
        "parent",
    ],
)
def test_empty_ids_are_rejected_naming_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(EventError, match=rf"^{field}: expected a non-empty string id"):
        build()


def test_numeric_ids_must_be_converted_to_strings_by_the_adapter() -> None:
    # Telegram ids arrive as ints; an unconverted one must fail loudly instead of being stored as 12345.
    with pytest.raises(EventError, match=r"^user_id: .*12345"):
        MemberRef(12345)  # type: ignore[arg-type]
    assert MemberRef("12345").user_id == "12345"


def test_negative_length_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^length: expected a non-negative integer, got -1"):
        message(length=-1)
    assert message(length=0).length == 0


def test_negative_attachment_count_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^attachments: "):
        message(attachments=-2)


def test_reaction_needs_an_emoji() -> None:
    with pytest.raises(EventError, match=r"^emoji: "):
        reaction(emoji="")


def test_negative_purchase_amount_is_rejected() -> None:
    with pytest.raises(EventError, match=r"^amount: .*-5"):
        purchase(amount=-5)


@pytest.mark.parametrize("currency", ["usd", "EURO", "EU", "", "E1R", "Eur"])
def test_bad_currency_is_rejected_and_quoted(currency: str) -> None:
    with pytest.raises(EventError, match=r"^currency: expected a 3-letter code") as caught:
        purchase(currency=currency, amount=4900)
    assert repr(currency) in str(caught.value)


@pytest.mark.parametrize("currency", ["EUR", "USD", "XTR"])
def test_iso_currency_codes_are_accepted(currency: str) -> None:
    assert purchase(currency=currency).currency == currency


def test_amount_in_major_units() -> None:
    assert purchase(amount=4950, currency="EUR").amount_decimal() == Decimal("49.50")
    # Telegram Stars have no minor unit: 500 stars are 500, not 5.00.
    assert purchase(amount=500, currency="XTR").amount_decimal() == Decimal(500)


@pytest.mark.parametrize(
    "name",
    ["", "Stats", "/stats", "stats now", "stats-now", "статистика", "a" * 33, "stats\n"],
)
def test_bad_command_names_are_rejected(name: str) -> None:
    with pytest.raises(EventError, match=r"^name: expected a command name"):
        command(name=name)


@pytest.mark.parametrize("name", ["stats", "report", "nudges", "top_10", "a" * 32])
def test_valid_command_names_are_accepted(name: str) -> None:
    assert command(name=name).name == name


# --- text facts ---


@pytest.mark.parametrize(
    "text",
    [
        "Try this:\n```python\nawait asyncio.sleep(1)\n```",
        "```\nunterminated fence at the end",
        "use `asyncio.gather` here",
        "both `a` and `b`",
    ],
)
def test_code_is_detected(text: str) -> None:
    facts = text_facts(text)
    assert facts.has_code
    assert not facts.has_link


@pytest.mark.parametrize(
    "text",
    [
        "docs: https://docs.python.org/3/library/asyncio.html",
        "http://example.com",
        "see HTTPS://EXAMPLE.ORG/page",
        "go to www.python.org please",
    ],
)
def test_links_are_detected(text: str) -> None:
    facts = text_facts(text)
    assert facts.has_link
    assert not facts.has_code


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Thanks, that fixed it! 3.12 works now.",
        "I'll read about it on python dot org",
        "what's the difference between http and https?",
        "a lone backtick ` does not make code",
        "an empty pair `` is not code either",
        "a backtick `\nand another on the next line ` are not inline code",
        "www is just three letters",
        "e.g. the file config.example.toml",
    ],
)
def test_plain_text_has_neither_code_nor_link(text: str) -> None:
    facts = text_facts(text)
    assert (facts.has_code, facts.has_link) == (False, False)


def test_text_with_code_and_link() -> None:
    facts = text_facts("run `pip install cohortbot`, docs at https://example.com/docs")
    assert (facts.has_code, facts.has_link) == (True, True)


def test_length_counts_characters_not_bytes() -> None:
    text = "héllo 👋"
    assert text_facts(text).length == 7
    assert len(text.encode()) != 7


# --- replies ---


@pytest.mark.parametrize(
    ("reply_message", "reply_user", "expected"),
    [
        (None, None, False),
        ("m0", None, True),  # a reply to a message whose author the platform did not say
        (None, "7", True),  # a reply to a user without the message (Telegram service replies)
        ("m0", "7", True),
    ],
)
def test_is_reply(reply_message: str | None, reply_user: str | None, expected: bool) -> None:
    event = message(reply_to_message_id=reply_message, reply_to_user_id=reply_user)
    assert event.is_reply is expected


# --- immutability and hashing ---


@every_event
def test_events_are_frozen(build: Callable[..., Event]) -> None:
    event = build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.occurred_at = AT + timedelta(days=1)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.community = "others"  # type: ignore[misc]
    assert event.occurred_at == AT
    assert event.community == "testers"


def test_refs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ALICE.user_id = "43"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        GENERAL.name = "#random"  # type: ignore[misc]


def test_events_cannot_grow_new_attributes() -> None:
    event = message()
    with pytest.raises((AttributeError, TypeError)):
        event.extra = 1  # type: ignore[attr-defined]


@every_event
def test_events_are_hashable_and_deduplicate_in_sets(build: Callable[..., Event]) -> None:
    first, same = build(), build()
    assert first is not same
    assert hash(first) == hash(same)
    assert {first, same} == {first}
    assert len({first: 1, same: 2}) == 1


def test_events_differing_in_one_field_do_not_collapse() -> None:
    events = {message(), message(message_id="m2"), message(author=MemberRef("43")), message(length=13)}
    assert len(events) == 4


def test_command_with_args_and_options_is_hashable() -> None:
    a = command(args=("7",), options=(("period", "week"),))
    b = command(args=("7",), options=(("period", "week"),))
    assert {a, b} == {a}
    assert a != command(args=("8",), options=(("period", "week"),))
