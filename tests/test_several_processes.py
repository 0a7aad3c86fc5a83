"""Several real ``cohortbot run`` processes on one PostgreSQL database, as an operator runs them behind a balancer.

Each test creates a fresh database on the local server and drops it afterwards. The processes talk to the fake
Telegram Bot API over HTTP; the leader is killed with SIGKILL, as when its host dies.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from bot.leadership import FOLLOWER_MESSAGE, LEADER_MESSAGE
from storage.engine import make_engine, normalise_url
from tests.conftest import postgres_url, require_backend
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import Call, FakeBotApi
from tests.helpers.cohortbot_process import run_cli, running_bot

pytestmark = [pytest.mark.slow, pytest.mark.storage]

WEBHOOK_SECRET = "several-processes-secret"
TAKEOVER_LIMIT = 30.0  # seconds from the leader's death to another process running the jobs (the limit)


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (a schema would not do: two processes must see one database)."""
    require_backend("postgresql")
    name = f"cohortbot_lead_{uuid.uuid4().hex[:10]}"
    admin = make_engine(postgres_url()).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalise_url(postgres_url())).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(fresh_database: str) -> Iterator[Engine]:
    eng = make_engine(fresh_database)
    yield eng
    eng.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


def write_config(path: Path, db_url: str, base_url: str, telegram: str = "") -> Path:
    path.write_text(
        f"""
[community]
name = "PyCraft"
timezone = "UTC"

[storage]
url = "{db_url}"

[telegram]
enabled = true
chat_ids = [{p.GROUP}]
owner_ids = [{p.OWNER}]
api_base_url = "{base_url}"
{telegram}

[digest]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def secrets(fake: FakeBotApi) -> dict[str, str]:
    return {"COHORTBOT_TELEGRAM_TOKEN": fake.token, "COHORTBOT_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET}


def count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


async def eventually(check: Callable[[], bool], what: str, within: float = 20.0) -> float:
    """Wait for ``check``; returns how long it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within:g} s waiting for: {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


def overlapping(polls: list[Call], before: float) -> list[tuple[Call, Call]]:
    """Pairs of getUpdates long polls in flight at once, among those started before ``before``."""
    started = sorted((c for c in polls if c.at < before), key=lambda c: c.at)
    return [
        (first, second)
        for first, second in itertools.pairwise(started)
        if first.finished is None or first.finished > second.at
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_leader_is_killed_and_the_follower_takes_over_jobs_and_polling(
    tmp_path: Path, fresh_database: str, engine: Engine, fake: FakeBotApi
) -> None:
    config = write_config(tmp_path / "cohortbot.toml", fresh_database, fake.base_url)
    code, said = await run_cli("db", "upgrade", "--config", str(config), secrets=secrets(fake))
    assert code == 0, said
    async with running_bot(config, secrets(fake)) as first:
        await first.wait_for_log(LEADER_MESSAGE)
        async with running_bot(config, secrets(fake)) as second:
            await second.wait_for_log(FOLLOWER_MESSAGE)
            assert LEADER_MESSAGE not in second.log
            assert "Telegram polling starts when this process becomes the leader" in second.log
            # The leader runs the jobs (one at once when it takes the lead), under its own host name.
            host = f"%:{first.process.pid}"
            await eventually(
                lambda: count(engine, "select count(*) from job_runs where host like :h", h=host) > 0,
                "a job run by the leader",
            )

            # While both run, only the leader polls: their long polls would otherwise overlap (Telegram
            # answers the second one with 409 Conflict).
            await fake.add_update(p.group_message(p.ALICE, "before the crash", message_id=1) | {"update_id": 1})
            await eventually(lambda: count(engine, "select count(*) from messages") == 1, "the first message")

            first.process.kill()
            killed_at = time.monotonic()
            await first.process.wait()
            await second.wait_for_log(LEADER_MESSAGE, within=TAKEOVER_LIMIT)
            host = f"%:{second.process.pid}"
            took = await eventually(
                lambda: count(engine, "select count(*) from job_runs where host like :h", h=host) > 0,
                "a job run by the new leader",
                within=TAKEOVER_LIMIT,
            )
            assert time.monotonic() - killed_at < TAKEOVER_LIMIT, took
            await second.wait_for_log("Telegram polling started: this process leads", within=10)

            # The new leader polls: an update sent after the crash is stored (once), and a command answered.
            await fake.add_update(p.group_message(p.BOB, "after the crash", message_id=2) | {"update_id": 2})
            await fake.add_update(p.group_message(p.BOB, "/stats", message_id=3) | {"update_id": 3})
            await eventually(lambda: count(engine, "select count(*) from messages") == 2, "the second message")
            # His /stats, answered by the new leader: privately, with a pointer in the group.
            await fake.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == p.BOB, within=20)
            await fake.wait_for(
                "sendMessage", lambda c: int(c.params["chat_id"]) == p.GROUP and "privately" in c.params["text"]
            )
            assert overlapping(fake.calls_to("getUpdates"), killed_at) == []
            assert await second.terminate() == 0


async def test_in_webhook_mode_any_process_takes_an_update_and_it_is_stored_once(
    tmp_path: Path, fresh_database: str, engine: Engine, fake: FakeBotApi
) -> None:
    ports = [free_port(), free_port()]
    configs = [
        write_config(
            tmp_path / f"cohortbot-{port}.toml",
            fresh_database,
            fake.base_url,
            telegram=f'mode = "webhook"\nwebhook_url = "https://bot.example.org/telegram"\n'
            f'webhook_listen = "127.0.0.1:{port}"',
        )
        for port in ports
    ]
    code, said = await run_cli("db", "upgrade", "--config", str(configs[0]), secrets=secrets(fake))
    assert code == 0, said
    async with running_bot(configs[0], secrets(fake)) as first, running_bot(configs[1], secrets(fake)) as second:
        await first.wait_for_log(LEADER_MESSAGE)
        await second.wait_for_log(FOLLOWER_MESSAGE)
        update = p.group_message(p.ALICE, "hello from behind the balancer", message_id=7) | {"update_id": 70}
        # The balancer (or Telegram retrying after a timeout) hands the same update to both processes at once.
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        async with aiohttp.ClientSession() as http:
            statuses = await asyncio.gather(
                *(post(http, f"http://127.0.0.1:{port}/telegram", update, headers) for port in ports)
            )
        assert statuses == [200, 200]
        assert count(engine, "select count(*) from messages") == 1
        assert count(engine, "select coalesce(sum(messages), 0) from community_daily_totals") == 1
        # Nobody polls in webhook mode, the leader neither (Telegram refuses getUpdates while a webhook is set).
        assert fake.calls_to("getUpdates") == []
        assert await second.terminate() == 0
        assert await first.terminate() == 0


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    async with http.post(url, json=body, headers=headers) as response:
        return response.status


async def test_a_second_cohortbot_run_on_one_sqlite_file_exits_at_once_with_why(tmp_path: Path) -> None:
    async with FakeBotApi() as api:
        config = write_config(tmp_path / "cohortbot.toml", f"sqlite:///{tmp_path / 'cohortbot.db'}", api.base_url)
        code, said = await run_cli("db", "upgrade", "--config", str(config), secrets=secrets(api))
        assert code == 0, said
        async with running_bot(config, secrets(api)) as first:
            started = time.monotonic()
            code, said = await run_cli("run", "--config", str(config), secrets=secrets(api))
            assert code != 0
            assert "another cohortbot is already running on this SQLite database" in said
            assert f"process {first.process.pid}" in said
            assert time.monotonic() - started < 20
            # One-shot commands still work beside the running bot.
            code, said = await run_cli("jobs", "--config", str(config), secrets=secrets(api))
            assert code == 0, said
            assert first.process.returncode is None
            assert await first.terminate() == 0
        # Once it stopped, the next start is not refused (the lock went with the process).
        async with running_bot(config, secrets(api)) as again:
            assert await again.terminate() == 0
