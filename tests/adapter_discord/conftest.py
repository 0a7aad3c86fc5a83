"""Fixtures for the Discord adapter: the fake Discord, and an adapter wired to a real SQLite database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import pytest
from sqlalchemy import Engine, text

from bot.adapters.discord.adapter import DiscordAdapter
from bot.app import course_records
from bot.clock import SystemClock
from bot.config import Secrets, Settings, parse_settings
from bot.core.commands import all_commands
from bot.core.commands.base import CommandSpec
from bot.core.dispatcher import Dispatcher
from bot.core.ports import AdapterDeps
from storage.catalog import sync_courses
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import upgrade
from storage.writer import EventWriter
from tests.fakes.discord_api import TOKEN, FakeDiscord, FakeGuild, member, role
from tests.helpers.sqlite_lock import short_busy_timeout

GUILD_ID = "800000000000000001"
OWNER_ID = "810000000000000001"
ANN_ID = "810000000000000002"  # a member
BOB_ID = "810000000000000003"  # has the admin role
CARA_ID = "810000000000000004"  # buys courses
PY_ROLE = "820000000000000001"
RUST_ROLE = "820000000000000002"
ADMIN_ROLE = "820000000000000003"
BOT_ROLE = "820000000000000004"
RUST_SKU = "830000000000000001"
COMMUNITY = "PyCraft"
MANAGE_GUILD = 0x20
MEMBER_PERMISSIONS = 0x400 | 0x800  # view channel, send messages


def make_guild() -> FakeGuild:
    return FakeGuild(
        id=GUILD_ID,
        owner_id=OWNER_ID,
        roles=[
            role(PY_ROLE, "py-async", 1),
            role(RUST_ROLE, "rust-intro", 2),
            role(ADMIN_ROLE, "mods", 3),
            role(BOT_ROLE, "cohortbot", 4, permissions=0x10000000 | 0x800),
        ],
        members=[
            member(OWNER_ID, "owner"),
            member(ANN_ID, "ann"),
            member(BOB_ID, "bob", roles=[ADMIN_ROLE]),
            member(CARA_ID, "cara"),
        ],
    )


def settings_dict(
    fake: FakeDiscord, db_path: Path, *, store_text: bool = False, shards: int | str | None = 1, **discord: Any
) -> dict[str, Any]:
    # shards=None leaves the key out ([discord] shard_count / shard_ids split the shards instead).
    shard_option = {"shards": shards} if shards is not None else {}
    return {
        "community": {"name": COMMUNITY, "timezone": "UTC"},
        "storage": {"url": f"sqlite:///{db_path}", "store_text": store_text},
        "discord": {
            "enabled": True,
            "guild_ids": [int(GUILD_ID)],
            "admin_role_ids": [int(ADMIN_ROLE)],
            "api_base_url": fake.api_base_url,
            "gateway_url": fake.gateway_url,
            **shard_option,
            **discord,
        },
        "digest": {"enabled": False},
        "courses": [
            {
                "id": "py-async",
                "title": "Async Python",
                "price": 49,
                "currency": "EUR",
                "checkout_url": "https://pycraft.example/checkout/py-async",
                "discord_role_id": int(PY_ROLE),
            },
            {
                "id": "rust-intro",
                "title": "Intro to Rust",
                "price_stars": 350,
                "discord_role_id": int(RUST_ROLE),
                "discord_sku_id": int(RUST_SKU),
            },
        ],
    }


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def _restore_discord_routes() -> Iterable[None]:
    """discord.py's REST base and gateway URL are class attributes: never leak a test's values."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord([make_guild()]) as server:
        yield server


@dataclass
class Harness:
    """An adapter on the shared loop with a real writer and database, like ``cohortbot run`` wires it."""

    fake: FakeDiscord
    settings: Settings
    engine: Engine
    writer: EventWriter
    dispatcher: Dispatcher
    adapter: DiscordAdapter
    started: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        await self.adapter.start()
        self.started = True

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    async def eventually(self, check: Callable[[], Any], *, within: float = 10.0) -> Any:
        """Flush the writer and re-check until ``check()`` is truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            await self.writer.flush()
            value = check()
            if value or loop.time() > deadline:
                assert value, f"condition not met within {within} s"
                return value
            await asyncio.sleep(0.02)

    def messages(self) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT m.platform_message_id, u.platform_user_id, c.platform_channel_id, p.platform_channel_id, "
            "m.length, m.text, r.platform_user_id FROM messages m JOIN members u ON u.id = m.member_id "
            "JOIN channels c ON c.id = m.channel_id LEFT JOIN channels p ON p.id = c.parent_id "
            "LEFT JOIN members r ON r.id = m.reply_to_member_id ORDER BY m.id"
        )

    def reactions(self) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT r.platform_message_id, u.platform_user_id, r.emoji, r.removed_at IS NOT NULL, "
            "t.platform_user_id FROM reactions r JOIN members u ON u.id = r.member_id "
            "LEFT JOIN members t ON t.id = r.target_member_id ORDER BY r.id"
        )

    def memberships(self) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT u.platform_user_id, e.kind FROM membership_events e JOIN members u ON u.id = e.member_id "
            "ORDER BY e.id"
        )

    def purchases(self) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT p.charge_id, u.platform_user_id, c.course_key, p.source, p.amount, p.currency, "
            "f.id IS NOT NULL FROM purchases p JOIN courses c ON c.id = p.course_id "
            "LEFT JOIN members u ON u.id = p.member_id LEFT JOIN refunds f ON f.purchase_id = p.id ORDER BY p.id"
        )


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    harnesses: list[Harness] = []

    async def build(
        *,
        store_text: bool = False,
        extra_commands: tuple[CommandSpec, ...] = (),
        defer_after: float = 1.5,
        start: bool = True,
        token: str = TOKEN,
        ready_timeout: float = 10.0,
        shards: int | str | None = 1,
        busy_timeout_ms: int | None = None,
        retry_wait: float = 1.0,
        discord: dict[str, Any] | None = None,
        message_content: bool = False,
        sections: dict[str, Any] | None = None,
    ) -> Harness:
        document = settings_dict(
            fake,
            tmp_path / "bot.db",
            store_text=store_text,
            shards=shards,
            **{"message_content": message_content, **(discord or {})},
        )
        settings = parse_settings(document | (sections or {}))
        engine = make_engine(settings.storage.url)
        if busy_timeout_ms is not None:
            short_busy_timeout(engine, busy_timeout_ms)
        upgrade(engine)
        store = IngestStore(engine, store_text=store_text)
        community_id = store.register_community(COMMUNITY, "UTC")
        sync_courses(engine, community_id, course_records(settings))
        writer = EventWriter(store, flush_interval=0.02, retry_delay=retry_wait)
        await writer.start()
        clock = SystemClock()
        dispatcher = Dispatcher(
            all_commands() + extra_commands, settings=settings, engine=engine, writer=writer, clock=clock
        )
        dispatcher.bind(community_id)
        deps = AdapterDeps(
            settings=settings,
            secrets=Secrets(discord_token=token),
            writer=writer,
            dispatcher=dispatcher,
            clock=clock,
            engine=engine,
        )
        adapter = DiscordAdapter(
            deps,
            guild_ready_timeout=0.05,
            defer_after=defer_after,
            ready_timeout=ready_timeout,
            retry_wait=retry_wait,
        )
        dispatcher.alerts.attach(adapter)  # as bot/app.py does
        harness = Harness(fake, settings, engine, writer, dispatcher, adapter)
        harnesses.append(harness)
        if start:
            await harness.start()
        return harness

    yield build
    for harness in harnesses:
        with contextlib.suppress(Exception):
            if harness.started:
                await harness.adapter.stop()
        await harness.writer.stop()
        harness.engine.dispose()
