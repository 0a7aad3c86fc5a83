"""The real dashboard application on a real SQLite database, driven with aiohttp's test client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine

from bot.config import Settings
from bot.config.settings import CommunitySettings, DashboardSettings, WebSettings
from bot.web.context import WebContext
from bot.web.health import ProblemCheck
from bot.web.links import issue_login_link
from bot.web.server import build_web_application
from storage.dashboard_access import DashboardIdentity
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import upgrade
from storage.writer import EventWriter
from tests.helpers.fake_actions import FakeClock

SECRET = "test-secret-" + "x" * 32
NOW = datetime(2024, 3, 6, 10, 0, tzinfo=UTC)
COMMUNITY_NAME = "PyCraft"


@pytest.fixture
def web_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/web.db")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def web_store(web_engine: Engine) -> IngestStore:
    store = IngestStore(web_engine)
    store.register_community(COMMUNITY_NAME, "Europe/Berlin")
    return store


@dataclass
class Dashboard:
    """A running test server, its context and helpers to sign in."""

    client: TestClient
    ctx: WebContext
    clock: FakeClock
    problems: list[str] = field(default_factory=list)

    def link(self, user: str = "42", platform: str = "telegram", name: str | None = "Ada") -> str:
        identity = DashboardIdentity(self.ctx.community_id, platform, user, name)
        url = issue_login_link(self.ctx.engine, self.ctx.settings, self.ctx.signing_secret, identity, self.clock.now())
        return url.url

    @staticmethod
    def token_of(url: str) -> str:
        match = re.search(r"[?&]t=([^&]+)", url)
        assert match is not None
        return match.group(1)

    async def sign_in(self, **kwargs: str) -> None:
        token = self.token_of(self.link(**kwargs))
        response = await self.client.post("/login", data={"t": token}, allow_redirects=False)
        assert response.status == 303, await response.text()

    async def csrf(self) -> str:
        page = await (await self.client.get("/")).text()
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match is not None
        return match.group(1)


def settings(**web: object) -> Settings:
    return Settings(
        community=CommunitySettings(name=COMMUNITY_NAME, timezone="Europe/Berlin"),
        web=WebSettings(**web),  # type: ignore[arg-type]
        dashboard=DashboardSettings(enabled=True, refresh_seconds=1),
    )


async def start_dashboard(
    store: IngestStore,
    *,
    writer: EventWriter | None = None,
    secret: str | None = SECRET,
    public_url: str = "",
    clock: FakeClock | None = None,
) -> Dashboard:
    clock = clock or FakeClock(NOW)
    ctx = WebContext(
        settings=settings(public_url=public_url),
        engine=store.engine,
        clock=clock,
        community_id=store.community_id(COMMUNITY_NAME),
        signing_secret=secret,
        writer=writer,
    )
    problems: list[str] = []
    check: ProblemCheck = lambda: list(problems)  # noqa: E731
    client = TestClient(TestServer(build_web_application(ctx, problems=check)))
    await client.start_server()
    return Dashboard(client, ctx, clock, problems)


@pytest.fixture
async def dashboard(web_store: IngestStore) -> AsyncIterator[Dashboard]:
    board = await start_dashboard(web_store)
    yield board
    await board.client.close()
