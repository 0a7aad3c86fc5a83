"""`cohortbot run` with Telegram and Discord in one process, the scheduler on, as the README tells owners to run it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import make_engine
from tests.adapter_discord.conftest import ANN_ID, GUILD_ID, make_guild
from tests.fakes import telegram_payloads as p
from tests.fakes.discord_api import TOKEN as DISCORD_TOKEN
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.cohortbot_process import run_cli, running_bot

pytestmark = pytest.mark.slow


async def test_one_process_logs_both_platforms_and_stops_cleanly(tmp_path: Path) -> None:
    db, config = tmp_path / "both.db", tmp_path / "cohortbot.toml"
    async with FakeBotApi() as telegram, FakeDiscord([make_guild()]) as discord:
        config.write_text(
            f"""
[community]
name = "PyCraft"
timezone = "Europe/Berlin"

[storage]
url = "sqlite:///{db}"

[telegram]
enabled = true
chat_ids = [{p.GROUP}]
owner_ids = [{p.OWNER}]
api_base_url = "{telegram.base_url}"

[discord]
enabled = true
guild_ids = [{GUILD_ID}]
api_base_url = "{discord.api_base_url}"
gateway_url = "{discord.gateway_url}"

[digest]
telegram_chat_ids = [{p.GROUP}]

[nudges]
enabled = true
""",
            encoding="utf-8",
        )
        secrets = {"COHORTBOT_TELEGRAM_TOKEN": telegram.token, "COHORTBOT_DISCORD_TOKEN": DISCORD_TOKEN}
        code, err = await run_cli("db", "upgrade", "--config", str(config), secrets=secrets)
        assert code == 0, err
        async with running_bot(config, secrets) as bot:
            assert "telegram adapter started" in bot.log and "discord adapter started" in bot.log
            update = await telegram.add_update(p.group_message(p.ALICE, "hello from Telegram", date=int(time.time())))
            await telegram.wait_confirmed([update])
            await discord.message(ANN_ID, "hello from Discord")
            token = await discord.slash(ANN_ID, "help")  # answered once everything before it was read
            await discord.wait_responses(token, within=20)
            assert await bot.terminate() == 0, bot.log
        assert telegram.token not in bot.log and DISCORD_TOKEN not in bot.log

    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        platforms = sorted(
            r[0] for r in conn.execute(text("select c.platform from messages m join channels c on c.id = m.channel_id"))
        )
    engine.dispose()
    assert platforms == ["discord", "telegram"]
    # The scheduler ran beside the adapters: `cohortbot jobs` knows the next digest and nudge run.
    code, printed = await run_cli("jobs", "--config", str(config), secrets={})
    assert code == 0, printed
    jobs = {line.split()[0]: line for line in printed.splitlines()[2:] if line.strip()}
    assert set(jobs) == {"refresh", "digest", "nudges", "reconcile", "subscriptions", "questions", "surveys"}
    assert " 09:00 " in jobs["digest"] and " 18:00 " in jobs["nudges"]
    assert " off " in jobs["reconcile"]  # no course gives a role or chat here
    assert " off " in jobs["subscriptions"]  # and none is monthly
    assert " off " in jobs["questions"]  # no [help] ping_role or ping_chat
