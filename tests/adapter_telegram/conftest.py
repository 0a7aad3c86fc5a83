"""Fixtures for the Telegram adapter: the fake Bot API and an adapter wired to a real SQLite database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.telegram.ratelimit import FloodLimits, Window
from bot.app import course_records
from bot.clock import SystemClock
from bot.config import Secrets, Settings, parse_settings
from bot.core.commands import all_commands
from bot.core.dispatcher import Dispatcher
from bot.core.ports import AdapterDeps
from storage.catalog import sync_courses
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import upgrade
from storage.writer import EventWriter
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.helpers.sqlite_lock import short_busy_timeout

SECRET = "test-signing-secret-0123456789abcdef"
PRICE = 50
# Loose limits keep tests fast; the limiter itself is tested with its own windows.
FAST = FloodLimits(per_chat=Window(100, 1.0), per_group=Window(100, 1.0), overall=Window(1000, 1.0))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx honours HTTP(S)_PROXY; the fake server is local.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def config(base_url: str, db_path: Path, **telegram: Any) -> dict[str, Any]:
    """A configuration document like an owner writes, pointed at the fake and a SQLite file."""
    return {
        "community": {"name": "PyCraft", "timezone": "UTC"},
        "storage": {"url": f"sqlite:///{db_path}"},
        "telegram": {
            "enabled": True,
            "chat_ids": [p.GROUP],
            "owner_ids": [p.OWNER],
            "api_base_url": base_url,
            **telegram,
        },
        "digest": {"enabled": False},
        "courses": [
            {
                "id": "py-async",
                "title": "Async Python",
                "description": "Eight weeks of asyncio",
                "price_stars": PRICE,
                "telegram_chat_id": p.COURSE_CHAT,
            }
        ],
    }


@dataclass
class Harness:
    """A running adapter over the fake Bot API and a real database."""

    fake: FakeBotApi
    adapter: TelegramAdapter
    writer: EventWriter
    engine: Engine
    settings: Settings

    async def deliver(self, *updates: dict[str, Any]) -> list[int]:
        """Hand updates to the bot through getUpdates and wait until it has fetched them."""
        ids = [await self.fake.add_update(u) for u in updates]
        await self.fake.wait_confirmed(ids)
        return ids

    def count(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())

    async def eventually(self, check: Callable[[], bool], what: str, within: float = 10.0) -> None:
        """Wait for a condition (flushing the writer in between); fail with ``what`` when it does not come."""
        deadline = time.monotonic() + within
        while True:
            await self.writer.flush()
            if check():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {what}")
            await asyncio.sleep(0.02)

    async def settle(self) -> None:
        """Wait until the adapter has nothing in flight and the writer has stored what it was given."""
        deadline = time.monotonic() + 10
        while self.adapter._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self.adapter._tasks), timeout=max(deadline - time.monotonic(), 0.01))
        await self.writer.flush()


@contextlib.asynccontextmanager
async def running(
    fake: FakeBotApi,
    db_path: Path,
    *,
    limits: FloodLimits = FAST,
    secrets: Secrets | None = None,
    busy_timeout_ms: int | None = None,
    retry_wait: float = 1.0,
    writer_retry_wait: float | None = None,
    extra: dict[str, Any] | None = None,
    **telegram: Any,
) -> AsyncIterator[Harness]:
    """Start the storage, dispatcher (the real command set) and adapter; stop them in the app's order.

    ``busy_timeout_ms`` shortens SQLite's wait for a write lock (10 s in production) so that a test can make
    storing really fail while another connection holds the lock; ``retry_wait`` is the adapter's first back-off
    wait, ``writer_retry_wait`` the writer's (the same by default). ``extra`` adds or replaces top-level sections
    (``courses``, ``sales``).
    """
    settings = parse_settings(config(fake.base_url, db_path, **telegram) | (extra or {}))
    engine = make_engine(settings.storage.url)
    if busy_timeout_ms is not None:
        short_busy_timeout(engine, busy_timeout_ms)
    upgrade(engine)
    store = IngestStore(engine, store_text=settings.storage.store_text)
    community_id = store.register_community(settings.community.name, settings.community.timezone)
    sync_courses(engine, community_id, course_records(settings))
    writer = EventWriter(store, flush_interval=0.05, retry_delay=writer_retry_wait or retry_wait)
    clock = SystemClock()
    dispatcher = Dispatcher(
        all_commands(), settings=settings, engine=engine, writer=writer, clock=clock, signing_secret=SECRET
    )
    dispatcher.bind(community_id)
    deps = AdapterDeps(
        settings=settings,
        secrets=secrets or Secrets(telegram_token=fake.token, signing_secret=SECRET),
        writer=writer,
        dispatcher=dispatcher,
        clock=clock,
        engine=engine,
    )
    adapter = TelegramAdapter(deps, flood_limits=limits, poll_timeout=5, retry_wait=retry_wait)
    dispatcher.alerts.attach(adapter)  # as bot/app.py does
    await writer.start()
    try:
        await adapter.start()
        yield Harness(fake, adapter, writer, engine, settings)
    finally:
        await adapter.stop()
        await writer.stop()
        engine.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(DEFAULT_TOKEN) as api:
        yield api


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cohortbot.db"
