"""Translation of real Discord gateway payloads (recorded by discord4j, descord and the API docs) into events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.discord import translate
from bot.config import CourseSettings
from storage.events import ChannelRef, EventError, Platform, PurchaseSource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platform-payloads" / "discord"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
COMMUNITY = "PyCraft"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def dispatch(name: str) -> tuple[str, dict[str, Any]]:
    frame = load(name)
    return str(frame["t"]), dict(frame["d"])


COURSES = (
    CourseSettings(id="py-async", title="Async Python", price=Decimal("49.90"), currency="EUR", discord_role_id=1),
    CourseSettings(id="rust-intro", title="Intro to Rust", price_stars=350, discord_sku_id=1019475255913222144),
)


def test_plain_message_keeps_metadata_only_by_default() -> None:
    event, payload = dispatch("gateway_MessageCreate.Type0.discord4j.json")
    assert event == "MESSAGE_CREATE"
    assert translate.in_guilds(payload, [694205451682978886])
    assert not translate.in_guilds(payload, [1])
    msg = translate.message_event(payload, community=COMMUNITY, store_text=False)
    assert msg is not None
    assert msg.platform is Platform.DISCORD
    assert msg.message_id == "732582724170285086"
    assert msg.channel == ChannelRef("727947198481956945")
    assert msg.author.user_id == "562268917771413264"
    assert msg.author.display_name == "Username"
    assert not msg.author.is_bot
    assert msg.occurred_at == datetime(2020, 7, 14, 13, 2, 12, 171000, tzinfo=UTC)
    assert (msg.length, msg.has_code, msg.has_link, msg.text) == (5, False, False, None)
    assert not msg.is_reply


def test_message_text_is_kept_only_with_text_storage() -> None:
    _, payload = dispatch("gateway_MessageCreate.Type0.discord4j.json")
    msg = translate.message_event(payload, community=COMMUNITY, store_text=True)
    assert msg is not None and msg.text == ".ping"


def test_reply_names_the_message_and_its_author() -> None:
    _, payload = dispatch("gateway_MessageCreate.Type19.discord4j.json")
    msg = translate.message_event(payload, community=COMMUNITY, store_text=False)
    assert msg is not None
    assert msg.reply_to_message_id == "775214933398782002"
    assert msg.reply_to_user_id == "344487830824943618"
    assert msg.is_reply and msg.length == len("cool.")


def test_forwarded_message_is_not_a_reply() -> None:
    _, payload = dispatch("gateway_MessageCreate.Type19.discord4j.json")
    payload = {**payload, "type": 0, "message_reference": {**payload["message_reference"], "type": 1}}
    msg = translate.message_event(payload, community=COMMUNITY, store_text=False)
    assert msg is not None and not msg.is_reply


def test_thread_message_names_its_parent_channel_via_the_cache_lookup() -> None:
    _, payload = dispatch("gateway_MessageCreate.Type0.discord4j.json")
    threads = {"727947198481956945": ChannelRef("727947198481956945", name="help", parent_id="111")}
    msg = translate.message_event(payload, community=COMMUNITY, store_text=False, channels=threads.get)
    assert msg is not None
    assert msg.channel == ChannelRef("727947198481956945", name="help", parent_id="111")


@pytest.mark.parametrize(
    "change",
    [
        {"author": {"id": "1", "username": "helper", "bot": True}},
        {"webhook_id": "55"},
        {"type": 7},  # "X joined the server" system message
    ],
)
def test_bots_webhooks_and_system_messages_are_not_member_activity(change: dict[str, Any]) -> None:
    _, payload = dispatch("gateway_MessageCreate.Type0.discord4j.json")
    assert translate.message_event({**payload, **change}, community=COMMUNITY, store_text=False) is None


def test_message_without_guild_is_outside_every_configured_guild() -> None:
    payload = load("message_object_example.discord-api-docs.json")
    assert not translate.in_guilds(payload, [290926798999357250])


def test_reaction_add_on_an_uncached_message() -> None:
    event, payload = dispatch("gateway_MessageReactionAdd.discord4j.json")
    assert event == "MESSAGE_REACTION_ADD"
    reaction = translate.reaction_event(payload, community=COMMUNITY, added=True, now=NOW)
    assert reaction is not None
    assert reaction.message_id == "679003565884440580"
    assert reaction.channel.channel_id == "185949590652977152"
    assert reaction.member.user_id == "123456789012345678"
    assert reaction.member.display_name == "a"
    assert reaction.emoji == "😊"
    assert reaction.added and reaction.occurred_at == NOW
    assert reaction.message_author_id is None  # "0" means unknown


def test_reaction_remove_has_no_member_object() -> None:
    _, payload = dispatch("gateway_MessageReactionRemove.discord4j.json")
    reaction = translate.reaction_event(payload, community=COMMUNITY, added=False, now=NOW)
    assert reaction is not None
    assert not reaction.added and reaction.emoji == "🤔" and reaction.member.user_id == "123456789012345678"


def test_reaction_with_author_and_custom_emoji_and_the_bots_own_reaction() -> None:
    _, payload = dispatch("gateway_MessageReactionAdd.discord4j.json")
    custom = {**payload, "message_author_id": "42", "emoji": {"id": "77", "name": "party"}}
    reaction = translate.reaction_event(custom, community=COMMUNITY, added=True, now=NOW)
    assert reaction is not None and reaction.message_author_id == "42" and reaction.emoji == "party:77"
    own = translate.reaction_event(payload, community=COMMUNITY, added=True, now=NOW, self_id="123456789012345678")
    assert own is None


@pytest.mark.parametrize(
    ("name", "user_id", "joined"),
    [
        (
            "gateway_GUILD_MEMBER_ADD.descord-readme.json",
            "744658428487794819",
            datetime(2020, 8, 28, 14, 30, 28, 304377),
        ),
        ("gateway_GuildMemberAdd.discord4j.json", "123456789012345678", datetime(2020, 2, 22, 18, 17, 30, 877307)),
    ],
)
def test_member_join(name: str, user_id: str, joined: datetime) -> None:
    event, payload = dispatch(name)
    assert event == "GUILD_MEMBER_ADD"
    join = translate.member_joined(payload, community=COMMUNITY, now=NOW)
    assert join is not None
    assert join.member.user_id == user_id
    assert join.occurred_at == joined.replace(tzinfo=UTC)


def test_member_leave_of_a_bot_is_ignored_and_of_a_member_is_stamped_now() -> None:
    event, payload = dispatch("gateway_GuildMemberRemove.discord4j.json")
    assert event == "GUILD_MEMBER_REMOVE"
    assert translate.member_left(payload, community=COMMUNITY, now=NOW) is None
    human = copy.deepcopy(payload)
    human["user"]["bot"] = False
    left = translate.member_left(human, community=COMMUNITY, now=NOW)
    assert left is not None and left.member.user_id == "123456789012345678" and left.occurred_at == NOW


def test_entitlement_for_a_course_sku_is_a_purchase() -> None:
    payload = load("entitlement_object_example.discord-api-docs.json")
    purchase = translate.entitlement_purchase(payload, community=COMMUNITY, courses=COURSES, now=NOW)
    assert purchase is not None
    assert purchase.charge_id == "1019653849998299136"
    assert purchase.course_id == "rust-intro"
    assert purchase.member.user_id == "771129655544643584"
    assert purchase.source is PurchaseSource.DISCORD_ENTITLEMENT
    # No money price configured for the course: counted as a sale of unknown amount.
    assert (purchase.amount, purchase.currency) == (0, "USD")
    assert purchase.occurred_at == datetime(2022, 9, 14, 17, 0, 18, 704163, tzinfo=UTC)


def test_entitlement_amount_comes_from_the_configured_price() -> None:
    payload = load("entitlement_object_example.discord-api-docs.json")
    priced = (
        CourseSettings(
            id="rust-intro", title="R", price=Decimal("49.90"), currency="EUR", discord_sku_id=1019475255913222144
        ),
    )
    purchase = translate.entitlement_purchase(payload, community=COMMUNITY, courses=priced, now=NOW)
    assert purchase is not None and (purchase.amount, purchase.currency) == (4990, "EUR")


def test_entitlements_that_are_not_course_purchases_are_ignored() -> None:
    payload = load("entitlement_object_example.discord-api-docs.json")
    assert (
        translate.entitlement_purchase({**payload, "sku_id": "5"}, community=COMMUNITY, courses=COURSES, now=NOW)
        is None
    )
    assert (
        translate.entitlement_purchase({**payload, "deleted": True}, community=COMMUNITY, courses=COURSES, now=NOW)
        is None
    )


def test_entitlement_deletion_is_a_refund_of_the_same_charge_and_end_is_detected() -> None:
    payload = load("entitlement_object_example.discord-api-docs.json")
    refund = translate.entitlement_refund(payload, community=COMMUNITY, now=NOW, reason="deleted")
    assert refund.charge_id == "1019653849998299136" and refund.occurred_at == NOW
    assert translate.entitlement_ended(payload, NOW)  # ends_at 2022-10-14
    assert not translate.entitlement_ended(payload, datetime(2022, 10, 1, tzinfo=UTC))
    assert not translate.entitlement_ended({**payload, "ends_at": None}, NOW)


def test_slash_command_options_by_name_with_user_ids() -> None:
    event, payload = dispatch("gateway_InteractionCreate.discord4j.json")
    assert event == "INTERACTION_CREATE"
    inv = translate.command_invocation(payload, community=COMMUNITY, now=NOW)
    assert inv.name == "payload"
    assert inv.invoker.user_id == "275616469906358273" and inv.invoker.display_name == "Shadorc"
    assert dict(inv.options) == {
        "string": "hello",
        "integer": "52",
        "boolean": "false",
        "role": "609370233916096514",
        "channel": "339318275320184833",
        "user": "352205866889641984",
    }
    assert inv.channel == ChannelRef("342074301840752640") and not inv.is_private


def test_sub_command_groups_are_flattened() -> None:
    _, payload = dispatch("gateway_InteractionCreate.SubCommandGroup.discord4j.json")
    inv = translate.command_invocation(payload, community=COMMUNITY, now=NOW)
    assert inv.options == (("string", "hello"),)


def test_api_docs_interaction_and_admin_rights() -> None:
    payload = load("interaction_slash_command_example.discord-api-docs.json")
    inv = translate.command_invocation(payload, community=COMMUNITY, now=NOW)
    assert inv.name == "cardsearch" and inv.options == (("cardname", "The Gitrog Monster"),)
    caller = translate.interaction_caller(payload)
    assert caller.permissions == 2147483647 and caller.role_ids == {"539082325061836999"}
    assert translate.is_admin(caller, [])  # 2147483647 includes Manage Server


@pytest.mark.parametrize(
    ("permissions", "roles", "admin_roles", "expected"),
    [
        ("0", [], [], False),
        (str(0x400 | 0x800), ["1"], [2], False),  # view + send only
        (str(0x20), [], [], True),  # Manage Server
        (str(0x8), [], [], True),  # Administrator
        ("0", ["2"], [2], True),  # configured admin role
    ],
)
def test_admin_is_decided_by_the_interactions_member_permissions_or_roles(
    permissions: str, roles: list[str], admin_roles: list[int], expected: bool
) -> None:
    payload = load("interaction_slash_command_example.discord-api-docs.json")
    payload["member"] = {**payload["member"], "permissions": permissions, "roles": roles}
    assert translate.is_admin(translate.interaction_caller(payload), admin_roles) is expected


def test_button_press_runs_its_command_line_as_the_presser() -> None:
    payload = load("interaction_slash_command_example.discord-api-docs.json")
    press = {**payload, "type": 3, "data": {"custom_id": "cmd:/forget confirm 8f3a", "component_type": 2}}
    inv = translate.button_invocation(press, community=COMMUNITY, now=NOW)
    assert inv is not None
    assert (inv.name, inv.args, inv.invoker.user_id) == ("forget", ("confirm", "8f3a"), "53908232506183680")
    other = {**press, "data": {"custom_id": "somebody-elses-button", "component_type": 2}}
    assert translate.button_invocation(other, community=COMMUNITY, now=NOW) is None
    assert translate.button_custom_id("/buy py-async") == "cmd:/buy py-async"


def test_direct_message_interaction_uses_user_and_is_private() -> None:
    payload = load("interaction_slash_command_example.discord-api-docs.json")
    dm = {k: v for k, v in payload.items() if k not in ("member", "guild_id")}
    dm["user"] = payload["member"]["user"]
    inv = translate.command_invocation(dm, community=COMMUNITY, now=NOW)
    assert inv.is_private and inv.invoker.user_id == "53908232506183680"
    assert not translate.is_admin(translate.interaction_caller(dm), [])


def test_bad_timestamps_fail_loudly() -> None:
    with pytest.raises(EventError):
        translate.parse_time("yesterday")
    with pytest.raises(EventError):
        translate.parse_time("2024-01-01T00:00:00")
