"""Shared fixtures: a migrated database on every backend, and event factories.

Storage tests run on SQLite (a file per test) and on PostgreSQL (a schema per test, dropped afterwards).
PostgreSQL comes from ``COHORTBOT_TEST_POSTGRES_URL`` (default: the local server at 127.0.0.1:5432, database
``test``). When no server answers, PostgreSQL tests are skipped with the reason, unless
``COHORTBOT_REQUIRE_POSTGRES=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from storage.engine import make_engine, normalise_url
from storage.events import (
    ChannelRef,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    PurchaseEvent,
    PurchaseSource,
    ReactionEvent,
)
from storage.ingest import IngestStore
from storage.migrate import upgrade

# The headless-browser fixtures (``browser``) and helpers for the dashboard's browser tests.
pytest_plugins = ["tests.browser"]

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
COMMUNITY = "testers"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday

_pg_status: dict[str, str | None] = {}


def postgres_url() -> str:
    return os.environ.get("COHORTBOT_TEST_POSTGRES_URL", DEFAULT_PG_URL)


def _postgres_unavailable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if "reason" not in _pg_status:
        url = postgres_url()
        try:
            engine = make_engine(url)
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_status["reason"] = None
        except Exception as exc:  # any failure to connect means "no server here"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _pg_status["reason"] = f"no PostgreSQL server answers at {make_url(url).render_as_string()}: {first_line}"
    return _pg_status["reason"]


def require_backend(backend: str) -> None:
    if backend != "postgresql":
        return
    reason = _postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("COHORTBOT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"COHORTBOT_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(f"{reason} (set COHORTBOT_TEST_POSTGRES_URL to run the PostgreSQL variant)")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A URL of an empty database of the backend, cleaned up after the test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/cohortbot.db"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url())
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = make_url(normalise_url(postgres_url()))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A database migrated to the newest schema."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> IngestStore:
    s = IngestStore(engine)
    s.register_community(COMMUNITY, "Europe/Berlin")
    return s


class Events:
    """Builds realistic events with unique ids unless told otherwise."""

    def __init__(self, platform: Platform = Platform.DISCORD, community: str = COMMUNITY) -> None:
        self.platform = platform
        self.community = community
        self._ids = count(1000)

    def message(
        self,
        user: str = "u1",
        *,
        at: datetime = T0,
        message_id: str | None = None,
        channel: str = "c1",
        reply_to_user: str | None = None,
        length: int = 42,
        text: str | None = None,
        bot: bool = False,
        name: str | None = None,
        thread: str | None = None,
        imported_reactions: int = 0,
    ) -> MessageEvent:
        return MessageEvent(
            platform=self.platform,
            community=self.community,
            message_id=message_id or str(next(self._ids)),
            channel=ChannelRef(channel, name=f"#{channel}", thread_id=thread),
            author=MemberRef(user, display_name=name or user.title(), is_bot=bot),
            occurred_at=at,
            length=length,
            reply_to_message_id="1" if reply_to_user else None,
            reply_to_user_id=reply_to_user,
            text=text,
            imported_reactions=imported_reactions,
        )

    def reaction(
        self,
        user: str,
        message_id: str,
        *,
        at: datetime = T0,
        added: bool = True,
        emoji: str = "👍",
        channel: str = "c1",
        author: str | None = None,
    ) -> ReactionEvent:
        return ReactionEvent(
            platform=self.platform,
            community=self.community,
            channel=ChannelRef(channel),
            message_id=message_id,
            member=MemberRef(user),
            emoji=emoji,
            occurred_at=at,
            added=added,
            message_author_id=author,
        )

    def join(self, user: str, *, at: datetime = T0) -> MemberJoined:
        return MemberJoined(self.platform, self.community, MemberRef(user), at)

    def leave(self, user: str, *, at: datetime = T0) -> MemberLeft:
        return MemberLeft(self.platform, self.community, MemberRef(user), at)

    def purchase(
        self,
        user: str,
        course: str = "py-async",
        *,
        charge: str | None = None,
        at: datetime = T0,
        amount: int = 500,
    ) -> PurchaseEvent:
        return PurchaseEvent(
            platform=self.platform,
            community=self.community,
            charge_id=charge or f"ch-{next(self._ids)}",
            member=MemberRef(user),
            course_id=course,
            amount=amount,
            currency="XTR",
            occurred_at=at,
            source=PurchaseSource.TELEGRAM_STARS,
        )


@pytest.fixture
def ev() -> Events:
    return Events()


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
