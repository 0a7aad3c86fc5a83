"""With the dashboard in-process, the Telegram webhook is served on the dashboard's port: one port, one proxy."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from bot.adapters import build_adapters
from bot.app import build_app
from bot.config import Secrets, parse_settings
from bot.core.ports import AdapterStartError
from storage.engine import make_engine
from storage.migrate import upgrade
from tests.adapter_telegram.conftest import SECRET, config
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi

HOOK_SECRET = "s3cret-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def count(engine_url: str, sql: str) -> int:
    from sqlalchemy import text

    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


async def test_the_webhook_shares_the_dashboard_port_and_checks_its_own_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTBOT_TELEGRAM_WEBHOOK_SECRET", HOOK_SECRET)
    port, unused = free_port(), free_port()
    db = tmp_path / "hook.db"
    async with FakeBotApi() as fake:
        document = config(
            fake.base_url,
            db,
            mode="webhook",
            webhook_listen=f"127.0.0.1:{unused}",
            webhook_url="https://bot.pycraft.dev/telegram",
        )
        document |= {"web": {"port": port}, "dashboard": {"enabled": True}}
        settings = parse_settings(document)
        engine = make_engine(settings.storage.url)
        upgrade(engine)
        secrets = Secrets(telegram_token=fake.token, signing_secret=SECRET)
        app = build_app(settings, secrets=secrets, adapters=build_adapters, engine=engine)
        await app.start(schedule=False)
        try:
            (hook,) = await fake.wait_for("setWebhook")
            assert hook.params["url"] == "https://bot.pycraft.dev/telegram"
            update = p.group_message(p.ALICE, "via webhook", message_id=900) | {"update_id": 77}
            url = f"http://127.0.0.1:{port}/telegram"
            async with aiohttp.ClientSession() as http:
                # No dashboard login is needed, but the webhook's own secret is.
                async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "no"}) as refused:
                    assert refused.status == 403
                headers = {"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 200
                assert count(settings.storage.url, "select count(*) from messages") == 1
                # Webhook mode is alive once the webhook is set; the update shows on /metrics (stored before the 200).
                async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                    assert (health.status, await health.text()) == (200, "ok\n")
                async with http.get(f"http://127.0.0.1:{port}/metrics") as scraped:
                    figures = await scraped.text()
                assert 'cohortbot_events_stored_total{platform="telegram",type="message"} 1.0' in figures
                # Other POSTs still need a dashboard session, and nothing listens on webhook_listen.
                async with http.post(f"http://127.0.0.1:{port}/elsewhere", json=update, headers=headers) as other:
                    assert other.status == 401
                with pytest.raises(aiohttp.ClientConnectionError):
                    await http.post(f"http://127.0.0.1:{unused}/telegram", json=update, headers=headers)
        finally:
            await app.stop()


async def test_a_webhook_path_the_dashboard_uses_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTBOT_TELEGRAM_WEBHOOK_SECRET", HOOK_SECRET)
    async with FakeBotApi() as fake:
        document = config(fake.base_url, tmp_path / "hook.db", mode="webhook", webhook_url="https://x.org/login")
        document |= {"web": {"port": free_port()}, "dashboard": {"enabled": True}}
        settings = parse_settings(document)
        engine = make_engine(settings.storage.url)
        upgrade(engine)
        app = build_app(
            settings,
            secrets=Secrets(telegram_token=fake.token, signing_secret=SECRET),
            adapters=build_adapters,
            engine=engine,
        )
        try:
            with pytest.raises(AdapterStartError, match="taken by the dashboard"):
                await app.start(schedule=False)
        finally:
            await app.stop()
