"""The dashboard inside the bot: ``cohortbot run`` with ``[dashboard] enabled = true`` serves it on [web] port."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_app
from bot.config import Secrets
from bot.config.settings import CommunitySettings, DashboardSettings, Settings, StorageSettings, WebSettings
from storage.engine import make_engine
from storage.migrate import upgrade
from tests.adapter_telegram.test_end_to_end import cohortbot, db_upgrade, write_config
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi

SECRET = "run-test-secret-" + "q" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_healthz_follows_the_writer_inside_the_app(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/app.db")
    upgrade(engine)
    port = free_port()
    settings = Settings(
        community=CommunitySettings(name="PyCraft"),
        storage=StorageSettings(url=f"sqlite:///{tmp_path}/app.db"),
        web=WebSettings(port=port),
        dashboard=DashboardSettings(enabled=True),
    )
    app = build_app(settings, secrets=Secrets(signing_secret=SECRET), engine=engine)
    await app.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            ok = await http.get("/healthz")
            assert (ok.status, await ok.text()) == (200, "ok\n")
            # The writer's worker dies: the monitor must hear about it.
            (task,) = app.writer.supervised_tasks().values()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            down = await http.get("/healthz")
            assert down.status == 503
            assert "event writer is not running" in await down.text()
    finally:
        await app.stop()
    # Stopped with the app: nothing listens any more.
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.slow
async def test_cohortbot_run_serves_the_dashboard_and_pushes_a_new_message(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    port = free_port()
    async with FakeBotApi() as fake:
        write_config(config, fake.base_url, db)
        with config.open("a", encoding="utf-8") as handle:
            handle.write(f"\n[web]\nport = {port}\n\n[dashboard]\nenabled = true\n")
        await db_upgrade(config, fake.token)
        async with cohortbot(config, fake.token) as bot:
            await bot.wait_for_log(f"dashboard at http://127.0.0.1:{port}")
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
                health = await http.get("/healthz")
                assert (health.status, await health.text()) == (200, "ok\n")
                assert (await http.get("/")).status == 401

                # The owner asks for a link in the group; it is delivered privately and signs them in.
                await fake.add_update(p.group_message(p.OWNER, "/dashboard", message_id=1) | {"update_id": 1})
                (sent,) = await fake.wait_for(
                    "sendMessage", lambda call: "/login?t=" in str(call.params.get("text", ""))
                )
                assert int(sent.params["chat_id"]) == p.OWNER  # the owner's DM, not the group
                text = str(sent.params["text"])
                token = text.split("/login?t=", 1)[1].split("<", 1)[0].split()[0]
                assert (await http.post("/login", data={"t": token}, allow_redirects=False)).status == 303

                live = await http.get("/live")
                assert live.status == 200
                await asyncio.wait_for(live.content.readuntil(b"\n\n"), 5)
                now = int(time.time())
                await fake.add_update(p.group_message(p.ALICE, "hello", message_id=2, date=now) | {"update_id": 2})

                async def pushed() -> str:
                    while True:
                        chunk = (await live.content.readuntil(b"\n\n")).decode()
                        if '"messages":' in chunk and '"messages":0' not in chunk:
                            return chunk

                assert '"active_members":' in await asyncio.wait_for(pushed(), 5)
                live.close()
            assert await bot.terminate() == 0, bot.log
        assert token not in bot.log
