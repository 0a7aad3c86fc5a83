"""Dashboard logins and sessions in storage: once-only links, expiry, revocation, and forgetting an admin."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storage.dashboard_access import (
    DashboardIdentity,
    count_live_sessions,
    issue_login,
    live_session,
    open_session,
    redeem_login,
    revoke_session,
    revoke_sessions,
)
from storage.events import Platform
from storage.ingest import IngestStore
from storage.models import DashboardLogin, DashboardSession
from storage.writer import EventWriter
from tests.conftest import COMMUNITY, T0, Events

pytestmark = pytest.mark.storage


def admin(store: IngestStore, user: str = "alice", platform: str = "discord") -> DashboardIdentity:
    return DashboardIdentity(store.community_id(COMMUNITY), platform, user, user.title())


def test_a_login_works_once_and_names_its_admin(store: IngestStore) -> None:
    login = issue_login(store.engine, admin(store), T0)
    assert login.expires_at == T0 + timedelta(minutes=10)

    first = redeem_login(store.engine, login.login_id, T0 + timedelta(minutes=1))
    assert first.identity == admin(store)
    again = redeem_login(store.engine, login.login_id, T0 + timedelta(minutes=2))
    assert (again.identity, again.failure) == (None, "used")


def test_an_expired_or_unknown_login_is_refused(store: IngestStore) -> None:
    login = issue_login(store.engine, admin(store), T0)
    assert redeem_login(store.engine, login.login_id, T0 + timedelta(minutes=10)).failure == "expired"
    assert redeem_login(store.engine, "no-such-login", T0).failure == "unknown"
    # An expired link is not marked used: it stays "expired" however often it is tried.
    assert redeem_login(store.engine, login.login_id, T0 + timedelta(minutes=11)).failure == "expired"


def test_two_redeemers_racing_for_one_login_only_one_wins(store: IngestStore) -> None:
    login = issue_login(store.engine, admin(store), T0)
    results: list[DashboardIdentity | None] = []
    barrier = threading.Barrier(4)

    def redeem() -> None:
        barrier.wait()
        results.append(redeem_login(store.engine, login.login_id, T0 + timedelta(seconds=5)).identity)

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for result in results if result is not None) == 1


def test_a_session_lasts_twelve_hours_and_stores_only_a_hash(store: IngestStore) -> None:
    session = open_session(store.engine, admin(store), T0)
    assert live_session(store.engine, session.token, T0 + timedelta(hours=11, minutes=59)) == admin(store)
    assert live_session(store.engine, session.token, T0 + timedelta(hours=12)) is None
    assert live_session(store.engine, session.token + "x", T0) is None
    with store.engine.connect() as conn:
        stored = conn.execute(select(DashboardSession.token_hash)).scalars().all()
    assert stored and session.token not in stored


def test_logout_and_revoke_end_sessions(store: IngestStore) -> None:
    one = open_session(store.engine, admin(store, "alice"), T0)
    two = open_session(store.engine, admin(store, "bob"), T0)
    three = open_session(store.engine, admin(store, "bob"), T0)
    assert revoke_session(store.engine, one.token, T0) is True
    assert live_session(store.engine, one.token, T0) is None
    assert count_live_sessions(store.engine, T0) == 2

    assert revoke_sessions(store.engine, T0, platform="discord", platform_user_id="bob") == 2
    assert live_session(store.engine, two.token, T0) is None
    assert live_session(store.engine, three.token, T0) is None
    four = open_session(store.engine, admin(store, "carol"), T0)
    assert revoke_sessions(store.engine, T0) == 1
    assert live_session(store.engine, four.token, T0) is None


async def test_forgetting_an_admin_deletes_their_dashboard_logins_and_sessions(store: IngestStore, ev: Events) -> None:
    # Alice posted (a member row); Dave is an admin who never posted; Bob's rows must stay.
    store.write_batch([ev.message("alice"), ev.message("bob")])
    for user in ("alice", "dave", "bob"):
        issue_login(store.engine, admin(store, user), T0)
        open_session(store.engine, admin(store, user), T0)
    writer = EventWriter(store)
    await writer.start()
    try:
        report = await writer.forget_member(COMMUNITY, Platform.DISCORD.value, "alice")
        assert report is not None
        assert report.deleted["dashboard_logins"] == 1 and report.deleted["dashboard_sessions"] == 1
        dave = await writer.forget_member(COMMUNITY, Platform.DISCORD.value, "dave")
        assert dave is not None and dave.deleted == {"dashboard_logins": 1, "dashboard_sessions": 1}
    finally:
        await writer.stop()
    with store.engine.connect() as conn:
        for table in (DashboardLogin, DashboardSession):
            left = conn.execute(select(table.platform_user_id)).scalars().all()
            assert left == ["bob"]
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 1
