"""End to end: ``cohortbot run`` exits non-zero when a long-running task dies, and waits for an unreachable Bot API.

The real command in a subprocess, as a service manager runs it, against the fake Bot API.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from bot.cli import main
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import upgrade
from tests.adapter_telegram.test_end_to_end import cohortbot, count, db_upgrade, eventually, secrets, write_config
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.cohortbot_process import REPO, Bot, environment

pytestmark = pytest.mark.slow


async def test_a_revoked_token_ends_cohortbot_run_with_exit_1_and_the_reason(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    async with FakeBotApi() as fake:
        token = fake.token
        write_config(config, fake.base_url, db)
        await db_upgrade(config, token)
        engine = make_engine(f"sqlite:///{db}")
        async with cohortbot(config, token) as bot:
            await fake.add_update(p.group_message(p.ALICE, "first", message_id=1) | {"update_id": 1})
            await eventually(lambda: count(engine, "select count(*) from messages") == 1, "the first message")
            fake.token = "999:revoked-in-botfather"  # the owner revoked the token while the bot runs
            await fake.add_update(p.group_message(p.BOB, "second", message_id=2) | {"update_id": 2})
            # The poller dies on the next getUpdates; the process must not stay up deaf: it stops and says why.
            code = await asyncio.wait_for(bot.process.wait(), 30)
            await bot.reader
        assert code == 1, bot.log
        assert "the Telegram polling task failed: RuntimeError: Telegram no longer accepts the bot token" in bot.log
        assert "cohortbot: stopped: the Telegram polling task ended unexpectedly" in bot.log
        assert "Traceback" in bot.log  # the cause, for whoever reads the journal
        assert count(engine, "select count(*) from messages") == 2  # what it received was stored before exiting
        assert token not in bot.log
        engine.dispose()


async def test_cohortbot_run_waits_for_an_unreachable_bot_api_and_stops_on_sigterm_meanwhile(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    probe = await FakeBotApi().start()
    port = probe.port
    await probe.stop()  # nothing listens on the configured address yet
    fake = FakeBotApi()
    fake.port = port
    write_config(config, fake.base_url, db)
    await db_upgrade(config, fake.token)
    engine = make_engine(f"sqlite:///{db}")

    # Unreachable at start: retried with a clear line, not exit 1; a SIGTERM meanwhile ends it cleanly.
    bot = await start(config, fake.token)
    await bot.wait_for_log(f"Telegram Bot API unreachable at http://127.0.0.1:{port}/bot: ")
    await bot.wait_for_log("; retrying in 1 s")
    assert await bot.terminate() == 0, bot.log

    # Unreachable, then the API comes up: the bot connects and works.
    bot = await start(config, fake.token)
    try:
        await bot.wait_for_log("Telegram Bot API unreachable at")
        await fake.start(port)
        await bot.wait_for_log("cohortbot is running")
        await fake.add_update(p.group_message(p.ALICE, "hello", message_id=1) | {"update_id": 1})
        await eventually(lambda: count(engine, "select count(*) from messages") == 1, "the message stored")
        assert await bot.terminate() == 0, bot.log
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
        await fake.stop()
    assert fake.token not in bot.log
    engine.dispose()


async def start(config: Path, token: str) -> Bot:
    """``cohortbot --log-level INFO run``, without waiting for it to be running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--log-level",
        "INFO",
        "run",
        "--config",
        str(config),
        env=environment(secrets(token)),
        cwd=str(REPO),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Bot(process)


def test_a_one_shot_send_gives_up_on_an_unreachable_bot_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    write_config(config, f"http://127.0.0.1:{port}/bot", db)
    config.write_text(config.read_text(encoding="utf-8") + "\n[nudges]\nenabled = true\n", encoding="utf-8")
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    IngestStore(engine).register_community("PyCraft", "UTC")
    engine.dispose()
    for name, value in secrets(FakeBotApi().token).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("bot.cli.reports.CONNECT_WAIT", 1.0)  # 60 s in production
    # `cohortbot run` waits for the API as long as it takes; a command run from cron must end.
    assert main(["nudges", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"Telegram Bot API unreachable at http://127.0.0.1:{port}/bot: " in err
    assert "cohortbot: cannot connect: the platforms did not answer within 1 s (the log above says why)" in err
