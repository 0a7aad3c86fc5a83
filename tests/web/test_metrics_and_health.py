"""Operations: ``/metrics`` and ``/healthz`` of a real ``cohortbot run``, and its JSON log.

The bot runs as an operator runs it (``cohortbot --log-format json run`` in a subprocess) against the fake Bot API,
with ``[web] enabled = true`` and neither dashboard nor payments: the web server starts for monitoring alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.job_runs import finish_job_run, start_job_run
from tests.adapter_telegram.test_end_to_end import db_upgrade, secrets, to, write_config
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.cohortbot_process import running_bot
from tests.web.test_run_with_dashboard import free_port

pytestmark = pytest.mark.slow

METRICS_TOKEN = "scrape-token-" + "m" * 24


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the Prometheus text format (labels must match exactly), or None if absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    return None


def seed_an_earlier_run(db: Path) -> None:
    """The bot ran weeks ago and missed last week's digest: the next start catches it up (a job run to count)."""
    engine = make_engine(f"sqlite:///{db}")
    community_id = IngestStore(engine).register_community("PyCraft", "UTC")
    weeks_ago = datetime.now(UTC) - timedelta(days=30)
    run_id = start_job_run(engine, community_id, "refresh", now=weeks_ago, host="earlier")
    finish_job_run(engine, run_id, now=weeks_ago, outcome="ok")
    engine.dispose()


async def test_metrics_health_and_json_log_of_cohortbot_run(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    port = free_port()
    fake = await FakeBotApi().start()
    api_port = fake.port
    try:
        write_config(config, fake.base_url, db)
        text = config.read_text(encoding="utf-8").replace("[digest]\nenabled = false", "[digest]\nenabled = true")
        config.write_text(text + f"\n[web]\nenabled = true\nport = {port}\n", encoding="utf-8")
        await db_upgrade(config, fake.token)
        seed_an_earlier_run(db)
        env = secrets(fake.token) | {"COHORTBOT_METRICS_TOKEN": METRICS_TOKEN}
        async with running_bot(config, env, ["--log-format", "json"]) as bot:
            await bot.wait_for_log(f"web server (/healthz, /metrics) at http://127.0.0.1:{port}")
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

                async def scrape() -> str:
                    response = await http.get("/metrics")
                    assert response.status == 200
                    assert response.headers["Content-Type"].startswith("text/plain")
                    return await response.text()

                health = await http.get("/healthz")
                assert (health.status, await health.text()) == (200, "ok\n")

                # A member talks, another asks for their figures: both show on /metrics, read from this host.
                now = int(time.time())
                await fake.add_update(p.group_message(p.ALICE, "hello all", message_id=1, date=now) | {"update_id": 1})
                await fake.add_update(p.group_message(p.BOB, "/stats", message_id=2, date=now) | {"update_id": 2})
                await fake.wait_for("sendMessage", to(p.BOB), within=20)
                figures = ""

                async def counted() -> bool:
                    nonlocal figures
                    figures = await scrape()
                    return (
                        sample(figures, "cohortbot_events_stored_total", type="message", platform="telegram") == 1.0
                        and sample(figures, "cohortbot_command_seconds_count", command="stats") == 1.0
                        and sample(figures, "cohortbot_job_runs_total", job="digest", outcome="ok") == 1.0
                    )

                await eventually_async(counted, "a message, /stats and the caught-up digest counted")
                assert sample(figures, "cohortbot_writer_queue_depth") == 0.0
                assert (sample(figures, "cohortbot_writer_batch_seconds_count") or 0) >= 1
                assert sample(figures, "cohortbot_platform_reconnects_total", platform="telegram") is None

                # The same request relayed by a reverse proxy on this host is not "local"; the token lets it in.
                relayed = {"X-Forwarded-For": "203.0.113.9"}
                assert (await http.get("/metrics", headers=relayed)).status == 403
                assert (await http.get("/metrics", headers={"Forwarded": "for=203.0.113.9"})).status == 403
                wrong = await http.get("/metrics", headers=relayed | {"Authorization": "Bearer not-the-token"})
                assert wrong.status == 401
                right = await http.get("/metrics", headers=relayed | {"Authorization": f"Bearer {METRICS_TOKEN}"})
                assert right.status == 200
                assert "cohortbot_events_stored_total" in await right.text()

                # Telegram goes away: the bot keeps running, and /healthz says what is wrong until it is back.
                await fake.stop()

                async def unhealthy() -> bool:
                    response = await http.get("/healthz")
                    return response.status == 503 and "Telegram Bot API is not reachable" in await response.text()

                await eventually_async(unhealthy, "/healthz answering 503 with the reason")
                fake = await FakeBotApi(fake.token).start(api_port)

                async def healthy() -> bool:
                    return (await http.get("/healthz")).status == 200

                await eventually_async(healthy, "/healthz answering 200 again", within=40)
                assert sample(await scrape(), "cohortbot_platform_reconnects_total", platform="telegram") == 1.0
            assert await bot.terminate() == 0, bot.log
    finally:
        await fake.stop()

    # The log: one JSON object per line, with the fields a shipper indexes, and never a token.
    assert bot.lines
    for line in bot.lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)
    messages = [json.loads(line)["message"] for line in bot.lines]
    assert any("cohortbot is running" in m for m in messages)
    assert any("getUpdates failed" in m for m in messages)  # the outage is in the log too
    assert METRICS_TOKEN not in bot.log
    assert fake.token not in bot.log
    # Alembic's start-up chatter (its INFO lines on the migration context) stays out of the operator's log.
    assert not any(json.loads(line)["logger"].startswith("alembic") for line in bot.lines)


async def eventually_async(check: Callable[[], Awaitable[bool]], what: str, within: float = 20.0) -> None:
    """Await ``check()`` until it is true (an HTTP probe of the running bot)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.2)
