"""/leaderboard on Discord: the real discord.py client against the fake Discord, a real SQLite database."""

from __future__ import annotations

from tests.adapter_discord import conftest as discord_fixtures
from tests.adapter_discord.conftest import ANN_ID, BOB_ID, CARA_ID, GUILD_ID, OWNER_ID, HarnessFactory
from tests.fakes.discord_api import APP_ID

EPHEMERAL = 64

# The Discord adapter tests' fixtures (the fake Discord and a harness on a real database), used here by name.
_no_proxy = discord_fixtures._no_proxy
_restore_discord_routes = discord_fixtures._restore_discord_routes
fake = discord_fixtures.fake
make_harness = discord_fixtures.make_harness


async def test_leaderboard_is_a_slash_command_with_on_off_and_follows_the_small_group_rule(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    [sync] = h.fake.find("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    command = {c["name"]: c for c in sync.json}["leaderboard"]
    [setting] = command["options"]
    assert setting["name"] == "setting" and not setting.get("required")
    assert [c["value"] for c in setting["choices"]] == ["on", "off"]

    # Four members posted: under five, so the public answer names nobody.
    for user_id in (OWNER_ID, ANN_ID, BOB_ID, CARA_ID):
        await h.fake.message(user_id, "hello")
    await h.eventually(lambda: len(h.messages()) == 4)
    token = await h.fake.slash(ANN_ID, "leaderboard")
    calls = await h.fake.wait_responses(token)
    content = str(calls[-1].json.get("data", calls[-1].json).get("content", ""))
    assert "Not enough members on the leaderboard yet" in content
    assert not calls[0].json["data"].get("flags", 0) & EPHEMERAL  # a public answer in the channel
    assert "ann" not in content.lower()

    token = await h.fake.slash(ANN_ID, "leaderboard", {"setting": "off"})
    [callback, *_] = await h.fake.wait_responses(token)
    assert callback.json["data"]["flags"] & EPHEMERAL
    assert "hidden from the leaderboard" in str(callback.json)
    assert h.rows("select leaderboard_opt_out from members where platform_user_id = :u", u=ANN_ID) == [(1,)]
