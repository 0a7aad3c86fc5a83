"""The Discord side never goes deaf: a locked database, an unreachable API at start, a gateway that gives up.

The real discord.py client against the fake Discord (REST and gateway over HTTP), with a real SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.adapters.discord.adapter import DiscordAdapter
from bot.app import TaskDiedError, build_app, serve
from bot.config import Secrets, parse_settings
from bot.core.ports import AdapterStartError
from storage.migrate import upgrade
from tests.fakes.discord_api import TOKEN, FakeDiscord
from tests.helpers.sqlite_lock import write_locked
from tests.web.test_run_with_dashboard import free_port

from .conftest import ANN_ID, CARA_ID, GUILD_ID, RUST_ROLE, RUST_SKU, HarnessFactory, settings_dict

ROLE_PATH = rf"/guilds/{GUILD_ID}/members/(\d+)/roles/(\d+)"


def logged(caplog: pytest.LogCaptureFixture, needle: str) -> int:
    return sum(needle in r.getMessage() for r in caplog.records)


async def test_an_entitlement_while_the_database_is_locked_is_stored_and_granted_once_after(
    make_harness: HarnessFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = await make_harness(busy_timeout_ms=100, retry_wait=0.2)
    entitlement = h.fake.entitlement(CARA_ID, RUST_SKU)
    with write_locked(tmp_path / "bot.db"):
        await h.fake.message(ANN_ID, "before the payment")
        await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)  # Discord sends it once: it must not be dropped
        await h.fake.wait_for(lambda: logged(caplog, "failed (OperationalError: database is locked); retrying") >= 3)
        assert not h.fake.find("PUT", ROLE_PATH)  # no role before the sale is on disk
    await h.eventually(lambda: h.purchases())
    await h.fake.wait_for_call("PUT", ROLE_PATH)
    await h.adapter._drain(5.0)
    assert [row[:3] for row in h.purchases()] == [(entitlement["id"], CARA_ID, "rust-intro")]
    assert [c.path.split("/")[4:7:2] for c in h.fake.find("PUT", ROLE_PATH)] == [[CARA_ID, RUST_ROLE]]
    assert len(h.fake.find("POST", r"/channels/\d+/messages")) == 1  # one receipt by DM
    await h.fake.message(ANN_ID, "after the payment")  # the gateway kept going
    assert await h.eventually(lambda: len(h.messages()) == 2)


async def test_an_unreachable_discord_api_at_start_is_retried_until_it_answers(
    make_harness: HarnessFactory, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await fake.__aexit__(None, None, None)  # nothing listens on the configured address for now
    h = await make_harness(start=False, retry_wait=0.2)
    starting = asyncio.create_task(h.start())
    await fake.wait_for(lambda: logged(caplog, "Discord API unreachable at") >= 2)
    assert not starting.done()
    await fake.__aenter__()  # the API comes back on the same address
    await asyncio.wait_for(starting, 20)
    line = next(r.getMessage() for r in caplog.records if "Discord API unreachable at" in r.getMessage())
    assert line.startswith(f"Discord API unreachable at {fake.api_base_url}: ")
    assert TOKEN not in caplog.text
    await fake.message(ANN_ID, "hello after the outage")
    assert await h.eventually(h.messages)


async def test_a_gateway_that_gives_up_stops_serve_with_the_reason(
    fake: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = parse_settings(settings_dict(fake, tmp_path / "bot.db"))
    adapters: list[DiscordAdapter] = []

    def build(deps: Any) -> list[DiscordAdapter]:
        adapters.append(DiscordAdapter(deps, guild_ready_timeout=0.05))
        return adapters

    app = build_app(settings, secrets=Secrets(discord_token=TOKEN), adapters=build)
    upgrade(app.engine)
    started = asyncio.Event()
    serving = asyncio.create_task(serve(app, started=started))
    await asyncio.wait_for(started.wait(), 20)
    await fake.message(ANN_ID, "logged before the gateway gives up")
    await fake.force_reconnect(code=4004)  # Discord closes like this when the token was reset in the portal
    with pytest.raises(TaskDiedError, match="the Discord gateway task ended unexpectedly") as died:
        await asyncio.wait_for(serving, 20)
    assert "ConnectionClosed" in str(died.value)
    assert logged(caplog, "the Discord gateway task failed") == 1
    with app.engine.connect() as conn:  # the writer flushed what it held before serve returned
        assert conn.exec_driver_sql("select count(*) from messages").scalar_one() == 1


async def test_an_api_that_refuses_the_login_stops_start_with_what_to_check(make_harness: HarnessFactory) -> None:
    h = await make_harness(start=False, retry_wait=0.2)
    h.fake.inject("GET", "/users/@me", 403, code=0, message="blocked by the proxy")
    with pytest.raises(AdapterStartError, match=r"refused the login: 403 blocked by the proxy; check \[discord\]"):
        await h.start()


async def test_an_unreachable_gateway_at_start_is_retried_with_a_log_line(
    make_harness: HarnessFactory, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake.gateway_down = True
    h = await make_harness(start=False, retry_wait=0.2)
    starting = asyncio.create_task(h.start())
    await fake.wait_for(lambda: logged(caplog, "Discord gateway unreachable at"))
    assert not starting.done()  # not an exit
    line = next(r.getMessage() for r in caplog.records if "Discord gateway unreachable at" in r.getMessage())
    assert line.startswith(f"Discord gateway unreachable at {fake.gateway_url}: WSServerHandshakeError: 503")
    assert line.endswith("; retrying in 0.2 s")
    fake.gateway_down = False
    await asyncio.wait_for(starting, 30)
    await fake.message(ANN_ID, "hello once the gateway is back")
    assert await h.eventually(h.messages)


async def test_healthz_follows_the_gateway_and_metrics_count_its_reconnects(fake: FakeDiscord, tmp_path: Path) -> None:
    port = free_port()
    raw = settings_dict(fake, tmp_path / "bot.db")
    raw["web"] = {"enabled": True, "port": port}
    settings = parse_settings(raw)
    app = build_app(
        settings, secrets=Secrets(discord_token=TOKEN), adapters=lambda deps: [DiscordAdapter(deps, retry_wait=0.2)]
    )
    upgrade(app.engine)
    started, stop = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(serve(app, stop, started=started))
    await asyncio.wait_for(started.wait(), 20)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

            async def health() -> tuple[int, str]:
                response = await http.get("/healthz")
                return response.status, await response.text()

            async def reconnects() -> str:
                text = await (await http.get("/metrics")).text()
                found = re.search(r'^cohortbot_platform_reconnects_total\{platform="discord"\} (\S+)$', text, re.M)
                return found.group(1) if found else "none"

            assert await health() == (200, "ok\n")
            assert await reconnects() == "none"

            # Discord drops the connection and the session resumes: alive again, one reconnect counted.
            await fake.force_reconnect()
            await fake.wait_for(lambda: fake.resumes and fake.connected, within=20)
            await fake.wait_for(lambda: len(fake.resumes) == 1)
            assert await eventually_equal(reconnects, "1.0")
            assert await eventually_equal(health, (200, "ok\n"))

            # An outage: while the gateway cannot be reached, /healthz says so (a monitor pages someone).
            fake.gateway_down = True
            await fake.force_reconnect()
            assert await eventually_equal(health, (503, "the Discord gateway is not connected\n"))
            fake.gateway_down = False
            assert await eventually_equal(health, (200, "ok\n"), within=30)
            assert await eventually_equal(reconnects, "2.0")
    finally:
        stop.set()
        await asyncio.wait_for(serving, 20)


async def eventually_equal(probe: Callable[[], Awaitable[object]], expected: object, within: float = 20.0) -> bool:
    """Probe until it answers ``expected``; fails with the last answer."""
    deadline = asyncio.get_running_loop().time() + within
    while (answer := await probe()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {expected!r}, still {answer!r}")
        await asyncio.sleep(0.1)
    return True
