"""The Discord adapter in-process: the real discord.py client against the fake Discord, a real SQLite database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.core.commands.base import CommandContext, CommandSpec
from bot.core.ports import AdapterStartError, CapabilityError, DeliveryError
from bot.core.replies import Attachment, OutgoingMessage, Reply
from storage.events import MemberRef
from tests.fakes.discord_api import APP_ID, Call, snowflake

from .conftest import (
    ANN_ID,
    BOB_ID,
    CARA_ID,
    GUILD_ID,
    MANAGE_GUILD,
    OWNER_ID,
    PY_ROLE,
    RUST_ROLE,
    RUST_SKU,
    HarnessFactory,
)

EPHEMERAL = 64
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 32
ROLE_PATH = rf"/guilds/{GUILD_ID}/members/(\d+)/roles/(\d+)"


def body(call: Call) -> dict[str, Any]:
    """The message part of an interaction callback or follow-up."""
    data = call.json or {}
    return dict(data.get("data", data)) if "type" in data and "data" in data else dict(data)


def sent_message(h: Any, callback: Call) -> dict[str, Any]:
    """The message object Discord would attach to a button press on the bot's reply."""
    return {
        "id": snowflake(),
        "channel_id": h.fake.guild().channel_id,
        "type": 0,
        "content": body(callback).get("content", ""),
        "author": h.fake.bot["user"],
        "timestamp": "2024-06-01T10:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "flags": body(callback).get("flags", 0),
        "components": body(callback).get("components", []),
    }


def role_calls(h: Any, method: str) -> list[tuple[str, str]]:
    return [tuple(c.path.split("/")[4:7:2]) for c in h.fake.find(method, ROLE_PATH)]  # (user id, role id)


async def slow(ctx: CommandContext) -> Reply:
    """Take a while, like a big report."""
    await asyncio.sleep(0.3)
    return Reply.say("slow answer", private=True)


async def long_text(ctx: CommandContext) -> Reply:
    """Say a lot."""
    return Reply.say(*[f"line {i} " + "x" * 80 for i in range(60)], private=False)


EXTRA = (CommandSpec("slow", slow), CommandSpec("long", long_text, private=False))


# ---------------------------------------------------------------------------------------------------------------
# Start-up


async def test_start_identifies_with_the_needed_intents_and_registers_commands_per_guild(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    intents = int(h.fake.identifies[0]["intents"])
    assert intents & 1 and intents & (1 << 1)  # guilds, members
    assert intents & (1 << 9) and intents & (1 << 10)  # guild messages, guild reactions
    assert not intents & (1 << 15)  # no message content without text storage
    assert h.fake.chunk_requests and h.fake.chunk_requests[0]["guild_id"] in (GUILD_ID, int(GUILD_ID))
    [sync] = h.fake.find("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    commands = {c["name"]: c for c in sync.json}
    assert {"stats", "courses", "buy", "nudges", "mydata", "forget", "report", "grant", "refund"} <= set(commands)
    grant = {o["name"]: o for o in commands["grant"]["options"]}
    assert grant["member"]["type"] == 6  # a user picker
    assert [c["value"] for c in grant["course"]["choices"]] == ["py-async", "rust-intro"]
    assert [c["value"] for c in commands["nudges"]["options"][0]["choices"]] == ["on", "off"]
    # With admin roles configured, admin commands stay visible; the adapter checks rights itself.
    assert commands["report"].get("default_member_permissions") is None


async def test_text_storage_asks_for_message_content_and_keeps_the_text(make_harness: HarnessFactory) -> None:
    h = await make_harness(store_text=True)
    assert int(h.fake.identifies[0]["intents"]) & (1 << 15)
    await h.fake.message(ANN_ID, "see https://example.com")
    [row] = await h.eventually(h.messages)
    assert row[4:6] == (len("see https://example.com"), "see https://example.com")


async def test_refused_privileged_intent_says_which_and_where_to_enable_it(make_harness: HarnessFactory) -> None:
    h = await make_harness(start=False, store_text=True)
    h.fake.refuse_privileged = True
    with pytest.raises(AdapterStartError) as info:
        await h.start()
    message = str(info.value)
    assert "Server Members Intent" in message and "Message Content Intent" in message
    assert "Developer Portal → your application → Bot → Privileged Gateway Intents" in message


async def test_rejected_token_fails_start_with_what_to_fix(make_harness: HarnessFactory) -> None:
    h = await make_harness(start=False, token="wrong-token")
    with pytest.raises(AdapterStartError, match="COHORTBOT_DISCORD_TOKEN"):
        await h.start()


async def test_auto_shards_use_the_sharded_client(make_harness: HarnessFactory) -> None:
    h = await make_harness(shards="auto")
    assert h.fake.find("GET", "/gateway/bot")
    assert h.fake.identifies[0]["shard"] == [0, 1]
    await h.fake.message(ANN_ID, "sharded hello")
    assert await h.eventually(h.messages)


async def test_a_process_connects_only_its_configured_shards(make_harness: HarnessFactory) -> None:
    # Two of four shards here; another process runs [discord] shard_ids = [0, 2] with the same shard_count.
    h = await make_harness(shards=None, discord={"shard_count": 4, "shard_ids": [1, 3]})
    assert sorted(tuple(identify["shard"]) for identify in h.fake.identifies) == [(1, 4), (3, 4)]


async def test_intents_withdrawn_while_running_are_logged_with_the_fix(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness()
    caplog.set_level(logging.ERROR)
    await h.fake.force_reconnect(code=4014)  # Discord closes like this when an intent is switched off
    await h.fake.wait_for(lambda: any("ended for good" in r.getMessage() for r in caplog.records))
    [record] = [r for r in caplog.records if "ended for good" in r.getMessage()]
    assert "Privileged Gateway Intents" in record.getMessage()


# ---------------------------------------------------------------------------------------------------------------
# Logging


async def test_messages_threads_replies_reactions_joins_and_leaves_are_logged(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    guild = h.fake.guild()
    first = await h.fake.message(ANN_ID, "hello `code`")
    reply = await h.fake.message(BOB_ID, "hi ann", reply_to=(first, ANN_ID))
    in_thread = await h.fake.message(ANN_ID, "question", channel_id=guild.thread_id)
    await h.fake.message("999", "beep", bot=True)  # a bot: ignored
    await h.fake.reaction(BOB_ID, first, author_id=ANN_ID)
    await h.fake.reaction(CARA_ID, "123456", emoji="👍")  # a message the client never saw
    await h.fake.reaction(CARA_ID, "123456", emoji="👍", added=False)
    await h.fake.member_join("810000000000000099", "dora")
    await h.fake.member_leave("810000000000000099")
    rows = await h.eventually(lambda: len(h.memberships()) == 2 and h.messages())
    assert [(r[0], r[1]) for r in rows] == [(first, ANN_ID), (reply, BOB_ID), (in_thread, ANN_ID)]
    assert rows[0][2:6] == (guild.channel_id, None, len("hello `code`"), None)  # metadata only
    assert rows[1][6] == ANN_ID  # reply to ann
    assert rows[2][2:4] == (guild.thread_id, guild.channel_id)  # thread → its parent channel
    assert h.reactions() == [(first, BOB_ID, "🔥", False, ANN_ID), ("123456", CARA_ID, "👍", True, None)]
    assert h.memberships() == [("810000000000000099", "join"), ("810000000000000099", "leave")]


async def test_other_guilds_are_ignored(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    data = {
        "id": snowflake(),
        "type": 0,
        "channel_id": "1",
        "guild_id": "42",
        "author": {"id": ANN_ID, "username": "ann"},
        "content": "elsewhere",
        "timestamp": "2024-06-01T10:00:00+00:00",
        "attachments": [],
        "embeds": [],
        "mentions": [],
        "mention_roles": [],
        "pinned": False,
        "tts": False,
        "mention_everyone": False,
        "edited_timestamp": None,
    }
    await h.fake.dispatch("MESSAGE_CREATE", data)
    sentinel = await h.fake.message(ANN_ID, "here")
    rows = await h.eventually(h.messages)
    assert [r[0] for r in rows] == [sentinel]


@pytest.mark.parametrize("how", ["close", "op7"])
async def test_reconnect_resumes_and_loses_nothing(make_harness: HarnessFactory, how: str) -> None:
    h = await make_harness()
    before = await h.fake.message(ANN_ID, "before")
    await h.eventually(h.messages)
    await h.fake.force_reconnect(how=how)
    # Sent while the client is away: the fake keeps them and replays them on RESUME.
    missed = [await h.fake.message(ANN_ID, f"missed {i}") for i in range(3)]
    await h.fake.wait_for(lambda: h.fake.resumes and h.fake.connected)
    after = await h.fake.message(BOB_ID, "after")
    rows = await h.eventually(lambda: len(h.messages()) >= 5 and h.messages())
    assert [r[0] for r in rows] == [before, *missed, after]
    assert len(h.fake.identifies) == 1  # resumed, not re-identified
    # A dispatch delivered twice is still stored once.
    await h.fake.message(ANN_ID, "again", message_id=missed[0])
    sentinel = await h.fake.message(ANN_ID, "sentinel")
    rows = await h.eventually(lambda: sentinel in [r[0] for r in h.messages()] and h.messages())
    assert len(rows) == 6


# ---------------------------------------------------------------------------------------------------------------
# Commands


async def test_member_stats_is_ephemeral(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.fake.message(ANN_ID, "hi")
    await h.eventually(h.messages)
    token = await h.fake.slash(ANN_ID, "stats")
    [callback] = await h.fake.wait_responses(token)
    assert callback.json["type"] == 4
    assert callback.json["data"]["flags"] & EPHEMERAL
    # Her own figures: the one message she just posted.
    assert "Last 7 days: 1 message on 1 active day" in callback.json["data"]["content"]
    assert "Last 30 days: 1 message on 1 active day" in callback.json["data"]["content"]


async def test_admin_command_is_refused_to_members_and_answered_to_admins(make_harness: HarnessFactory) -> None:
    h = await make_harness(extra_commands=EXTRA)
    await h.fake.message(ANN_ID, "some activity")
    await h.eventually(h.messages)
    refused = await h.fake.slash(ANN_ID, "report", permissions=0x400 | 0x800)
    [call] = await h.fake.wait_responses(refused)
    assert "only for the community's admins" in call.json["data"]["content"]
    assert call.json["data"]["flags"] & EPHEMERAL
    # Bob is an admin through [discord] admin_role_ids, the owner through Manage Server.
    for user_id, permissions in ((BOB_ID, 0x400 | 0x800), (OWNER_ID, MANAGE_GUILD)):
        token = await h.fake.slash(user_id, "report", permissions=permissions)
        # The chart may come in a follow-up if the report took long enough to be deferred.
        calls = await h.fake.wait_for(lambda t=token: any(c.files for c in h.fake.responses(t)) and h.fake.responses(t))
        assert any(name.endswith(".png") for c in calls for name in c.files)
        assert "admins" not in str(calls[0].json)


async def test_slow_command_defers_then_follows_up(make_harness: HarnessFactory) -> None:
    h = await make_harness(extra_commands=EXTRA, defer_after=0.05)
    token = await h.fake.slash(ANN_ID, "slow")
    defer, follow = await h.fake.wait_responses(token, 2)
    assert defer.json["type"] == 5 and defer.json["data"]["flags"] & EPHEMERAL
    assert follow.path == f"/webhooks/{APP_ID}/{token}"
    assert follow.json["content"] == "slow answer"


async def test_long_answer_is_split_into_messages_of_at_most_2000_characters(make_harness: HarnessFactory) -> None:
    h = await make_harness(extra_commands=EXTRA)
    token = await h.fake.slash(ANN_ID, "long")
    calls = await h.fake.wait_responses(token, 3)
    contents = [body(c)["content"] for c in calls]
    assert all(len(c) <= 2000 for c in contents)
    assert "line 0 " in contents[0] and "line 59 " in contents[-1]
    assert not body(calls[0]).get("flags", 0) & EPHEMERAL  # not private: visible to the channel


async def test_course_buttons_run_their_command_as_the_presser(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    token = await h.fake.slash(ANN_ID, "courses")
    [callback] = await h.fake.wait_responses(token)
    buttons = [b for row in callback.json["data"]["components"] for b in row["components"]]
    custom_ids = [b["custom_id"] for b in buttons]
    assert "cmd:/buy py-async" in custom_ids and "cmd:/buy rust-intro" in custom_ids
    message = sent_message(h, callback)
    # External checkout: a link button.
    press = await h.fake.press(CARA_ID, message, "cmd:/buy py-async")
    [answer] = await h.fake.wait_responses(press)
    [link] = [b for row in answer.json["data"]["components"] for b in row["components"]]
    assert link["style"] == 5 and link["url"] == "https://pycraft.example/checkout/py-async"
    # A Discord SKU: a premium button, drawn by Discord.
    press = await h.fake.press(CARA_ID, message, "cmd:/buy rust-intro")
    [answer] = await h.fake.wait_responses(press)
    [premium] = [b for row in answer.json["data"]["components"] for b in row["components"]]
    assert premium["style"] == 6 and str(premium["sku_id"]) == RUST_SKU and "label" not in premium


# ---------------------------------------------------------------------------------------------------------------
# Sales and access


async def test_entitlement_purchase_gives_the_role_once_and_deletion_takes_it(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    entitlement = h.fake.entitlement(CARA_ID, RUST_SKU)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)  # delivered twice
    await h.fake.wait_for_call("PUT", ROLE_PATH)
    await h.fake.wait_for_call("POST", r"/channels/\d+/messages")  # the receipt, by DM
    await h.eventually(lambda: h.purchases())
    await h.adapter._drain(5.0)
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]
    assert h.purchases() == [(entitlement["id"], CARA_ID, "rust-intro", "discord_entitlement", 0, "USD", False)]
    await h.fake.dispatch("ENTITLEMENT_DELETE", entitlement)
    await h.fake.wait_for_call("DELETE", ROLE_PATH)
    assert role_calls(h, "DELETE") == [(CARA_ID, RUST_ROLE)]
    assert await h.eventually(lambda: h.purchases()[0][6])


async def test_grant_and_refund_commands_change_the_role(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    token = await h.fake.slash(BOB_ID, "grant", {"member": CARA_ID, "course": "py-async"})
    [answer] = await h.fake.wait_responses(token)
    content = answer.json["data"]["content"]
    # Cara has no name on record yet: she is named by her user id, and the course by its title.
    assert content.startswith(f"Recorded: **user {CARA_ID}** owns **Async Python** (49.00 EUR, granted by you).\n")
    assert "Access given." in content
    assert role_calls(h, "PUT") == [(CARA_ID, PY_ROLE)]
    [(_charge, user, course, source, amount, currency, refunded)] = h.purchases()
    assert (user, course, source, amount, currency, refunded) == (CARA_ID, "py-async", "grant", 4900, "EUR", False)
    token = await h.fake.slash(BOB_ID, "refund", {"member": CARA_ID, "course": "py-async"})
    [ask] = await h.fake.wait_responses(token)
    [button] = [b for row in body(ask)["components"] for b in row["components"]]
    assert button["style"] == 4 and button["custom_id"].startswith("cmd:/refund confirm ")
    assert role_calls(h, "DELETE") == [] and not h.purchases()[0][6]  # nothing before the press
    press = await h.fake.press(BOB_ID, sent_message(h, ask), button["custom_id"])
    await h.fake.wait_responses(press)
    assert role_calls(h, "DELETE") == [(CARA_ID, PY_ROLE)]
    assert h.purchases()[0][6]


async def test_missing_manage_roles_is_reported_once_and_the_sale_still_recorded(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness()
    h.fake.inject_missing_permissions("PUT", ROLE_PATH, times=2)
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        await h.fake.dispatch("ENTITLEMENT_CREATE", h.fake.entitlement(CARA_ID, RUST_SKU))
    await h.eventually(lambda: len(h.purchases()) == 2)
    await h.adapter._drain(5.0)
    warnings = [r.getMessage() for r in caplog.records if "Discord needs an admin" in r.getMessage()]
    assert len(warnings) == 1 and "Manage Roles" in warnings[0] and "rust-intro" in warnings[0]
    assert len(role_calls(h, "PUT")) == 2  # one try per sale: no retry loop
    dms = h.fake.find("POST", "/users/@me/channels")
    assert [str(c.json["recipient_id"]) for c in dms].count(OWNER_ID) == 1  # the owner is told once


async def test_rate_limited_role_change_is_waited_out(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    h.fake.inject("PUT", ROLE_PATH, 429, retry_after=0.05)
    result = await h.adapter.grant_access(MemberRef(CARA_ID), h.settings.courses[0])
    assert result.ok
    assert role_calls(h, "PUT") == [(CARA_ID, PY_ROLE), (CARA_ID, PY_ROLE)]


async def test_discord_refunds_are_not_bot_initiated(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    with pytest.raises(CapabilityError, match="Discord support"):
        await h.adapter.refund_payment(MemberRef(CARA_ID), "123")


async def test_stop_lets_an_in_flight_purchase_finish(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    h.fake.inject("PUT", ROLE_PATH, 429, retry_after=0.3)
    await h.fake.dispatch("ENTITLEMENT_CREATE", h.fake.entitlement(CARA_ID, RUST_SKU))
    await h.fake.wait_for_call("PUT", ROLE_PATH)
    await h.adapter.stop()
    h.started = False
    assert len(role_calls(h, "PUT")) == 2  # the retry after the rate limit happened before stop returned
    assert len(h.purchases()) == 1


# ---------------------------------------------------------------------------------------------------------------
# Sending


async def test_send_to_channel_with_a_chart_and_to_a_member_by_dm(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    channel = h.fake.guild().channel_id
    reply = Reply(Reply.say("Weekly digest").text, attachments=(Attachment("week.png", PNG, "image/png"),))
    await h.adapter.send(OutgoingMessage("discord", channel, reply))
    [post] = h.fake.find("POST", rf"/channels/{channel}/messages")
    assert post.json["content"] == "Weekly digest" and post.files == {"week.png": PNG}
    await h.adapter.send(OutgoingMessage("discord", ANN_ID, Reply.say("We miss you"), direct=True))
    [dm] = h.fake.find("POST", "/users/@me/channels")
    assert str(dm.json["recipient_id"]) == ANN_ID


async def test_a_question_ping_mentions_only_the_helpers_role(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    channel = h.fake.guild().channel_id
    await h.adapter.send(
        OutgoingMessage("discord", channel, Reply(Reply.say("A question waits").text, mention_role=555))
    )
    await h.adapter.send(OutgoingMessage("discord", channel, Reply.say("@everyone <@&555> digest")))
    ping, plain = h.fake.find("POST", rf"/channels/{channel}/messages")
    assert ping.json["content"].startswith("<@&555> A question waits")
    assert ping.json["allowed_mentions"]["parse"] == [] and ping.json["allowed_mentions"]["roles"] == [555]
    # Every other message pings nobody, whatever its text.
    assert plain.json["allowed_mentions"]["parse"] == [] and not plain.json["allowed_mentions"].get("roles")


async def test_member_who_blocks_dms_is_unreachable(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    h.fake.inject_cannot_dm()
    with pytest.raises(DeliveryError) as info:
        await h.adapter.send(OutgoingMessage("discord", ANN_ID, Reply.say("We miss you"), direct=True))
    assert info.value.unreachable_user


async def test_missing_channel_permission_is_a_delivery_error_reported_once(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    channel = h.fake.guild().channel_id
    h.fake.inject_missing_permissions("POST", rf"/channels/{channel}/messages", times=2)
    for _ in range(2):
        with pytest.raises(DeliveryError, match="Send Messages") as info:
            await h.adapter.send(OutgoingMessage("discord", channel, Reply.say("digest")))
        assert not info.value.unreachable_user
    await h.adapter._drain(5.0)
    assert [str(c.json["recipient_id"]) for c in h.fake.find("POST", "/users/@me/channels")] == [OWNER_ID]


async def test_mydata_is_an_ephemeral_file_and_forget_confirms_with_a_danger_button(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    await h.fake.message(ANN_ID, "my message")
    await h.eventually(h.messages)
    token = await h.fake.slash(ANN_ID, "mydata")
    [export] = await h.fake.wait_responses(token)
    assert body(export)["flags"] & EPHEMERAL
    [(name, data)] = export.files.items()
    assert name.endswith(".json") and ANN_ID.encode() in data

    token = await h.fake.slash(ANN_ID, "forget")
    [ask] = await h.fake.wait_responses(token)
    [button] = [b for row in body(ask)["components"] for b in row["components"]]
    assert button["style"] == 4 and button["custom_id"].startswith("cmd:/forget confirm ")
    assert h.messages()  # nothing deleted before the press
    press = await h.fake.press(ANN_ID, sent_message(h, ask), button["custom_id"])
    [done] = await h.fake.wait_responses(press)
    assert body(done)["flags"] & EPHEMERAL
    assert await h.eventually(lambda: not h.messages())
    # Someone else pressing the same button deletes nothing of theirs nor of ann's: the code is ann's alone.
    await h.fake.message(BOB_ID, "bob stays")
    await h.eventually(h.messages)
    press = await h.fake.press(BOB_ID, sent_message(h, ask), button["custom_id"])
    await h.fake.wait_responses(press)
    assert [r[1] for r in h.messages()] == [BOB_ID]
