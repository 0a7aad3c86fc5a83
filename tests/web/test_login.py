"""Signing in to the dashboard with a one-time link, and everything that must keep others out."""

from __future__ import annotations

from datetime import timedelta
from http.cookies import SimpleCookie

import pytest

from bot.web.links import NoSecretError, issue_login_link
from bot.web.security import SECURITY_HEADERS
from storage.dashboard_access import DashboardIdentity, revoke_sessions
from storage.ingest import IngestStore
from tests.web.conftest import COMMUNITY_NAME, Dashboard, start_dashboard


async def test_the_link_page_only_shows_a_button_and_the_post_signs_in(dashboard: Dashboard) -> None:
    url = dashboard.link(name="Ada Lovelace")
    assert url.startswith("http://127.0.0.1:8787/login?t=")
    token = dashboard.token_of(url)

    # A chat app's link preview fetches the link: that must not use it up.
    for _ in range(2):
        page = await dashboard.client.get(f"/login?t={token}")
        assert page.status == 200
        text = await page.text()
        assert f"Sign in to {COMMUNITY_NAME} dashboard" in text
        assert 'method="post"' in text
        assert "cohortbot_session" not in page.headers.get("Set-Cookie", "")

    response = await dashboard.client.post("/login", data={"t": token}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"
    cookie = SimpleCookie(response.headers["Set-Cookie"])["cohortbot_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600)
    assert not cookie["secure"]  # plain http on 127.0.0.1

    overview = await dashboard.client.get("/")
    assert overview.status == 200
    assert "Signed in as Ada Lovelace" in await overview.text()
    # Opening the same link again while signed in just leads in.
    reopened = await dashboard.client.get(f"/login?t={token}", allow_redirects=False)
    assert (reopened.status, reopened.headers["Location"]) == (303, "/")
    assert overview.headers["Cache-Control"] == "private, no-store"  # no proxy keeps a copy of member data


async def test_a_used_link_is_refused_and_says_so(dashboard: Dashboard) -> None:
    token = dashboard.token_of(dashboard.link())
    first = await dashboard.client.post("/login", data={"t": token}, allow_redirects=False)
    assert first.status == 303
    dashboard.client.session.cookie_jar.clear()

    again = await dashboard.client.post("/login", data={"t": token}, allow_redirects=False)
    assert again.status == 403
    assert "already used" in await again.text()
    assert "Set-Cookie" not in again.headers
    shown = await dashboard.client.get(f"/login?t={token}")
    assert shown.status == 403 and "already used" in await shown.text()


async def test_an_expired_link_is_refused_and_says_to_ask_again(dashboard: Dashboard) -> None:
    token = dashboard.token_of(dashboard.link())
    dashboard.clock.advance(timedelta(minutes=10, seconds=1))
    response = await dashboard.client.post("/login", data={"t": token}, allow_redirects=False)
    assert response.status == 403
    text = await response.text()
    assert "expired" in text and "/dashboard" in text
    assert (await dashboard.client.get("/")).status == 401


@pytest.mark.parametrize("change", ["id", "signature", "garbage"])
async def test_a_tampered_link_is_refused(dashboard: Dashboard, change: str) -> None:
    token = dashboard.token_of(dashboard.link())
    login_id, _, mac = token.rpartition(".")
    tampered = {
        "id": f"{login_id[:-1]}{'A' if login_id[-1] != 'A' else 'B'}.{mac}",
        "signature": f"{login_id}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "garbage": "not-a-link",
    }[change]
    response = await dashboard.client.post("/login", data={"t": tampered}, allow_redirects=False)
    assert response.status == 403
    assert "not valid" in await response.text()
    # The genuine link still works: a forgery did not use it up.
    assert (await dashboard.client.post("/login", data={"t": token}, allow_redirects=False)).status == 303


async def test_a_link_signed_with_another_secret_is_refused(web_store: IngestStore) -> None:
    other = await start_dashboard(web_store, secret="another-secret-" + "y" * 32)
    ours = await start_dashboard(web_store)
    try:
        token = other.token_of(other.link())
        response = await ours.client.post("/login", data={"t": token}, allow_redirects=False)
        assert response.status == 403
    finally:
        await other.client.close()
        await ours.client.close()


async def test_without_a_cookie_every_page_is_401_with_no_data(dashboard: Dashboard) -> None:
    for path in ("/", "/live", "/members", "/members.csv", "/report.json"):
        response = await dashboard.client.get(path)
        assert response.status == 401, path
        text = await response.text()
        assert "/dashboard" in text and "cohortbot dashboard link" in text
        assert "Ada" not in text and "data-live" not in text
    forged = await dashboard.client.get("/", cookies={"cohortbot_session": "made-up"})
    assert forged.status == 401


async def test_a_revoked_or_expired_session_is_refused(dashboard: Dashboard) -> None:
    await dashboard.sign_in()
    assert (await dashboard.client.get("/")).status == 200
    assert revoke_sessions(dashboard.ctx.engine, dashboard.clock.now()) == 1
    assert (await dashboard.client.get("/")).status == 401

    await dashboard.sign_in()
    dashboard.clock.advance(timedelta(hours=12))
    assert (await dashboard.client.get("/")).status == 401


async def test_logout_needs_the_csrf_token_and_ends_the_session(dashboard: Dashboard) -> None:
    await dashboard.sign_in()
    csrf = await dashboard.csrf()

    missing = await dashboard.client.post("/logout", data={})
    assert missing.status == 403
    wrong = await dashboard.client.post("/logout", data={"csrf_token": csrf[:-2] + "xx"})
    assert wrong.status == 403
    assert (await dashboard.client.get("/")).status == 200  # still signed in

    out = await dashboard.client.post("/logout", data={"csrf_token": csrf})
    assert out.status == 200
    assert "signed out" in (await out.text()).lower()
    assert (await dashboard.client.get("/")).status == 401


async def test_the_csrf_token_belongs_to_one_session(dashboard: Dashboard) -> None:
    await dashboard.sign_in(user="1")
    first = await dashboard.csrf()
    dashboard.client.session.cookie_jar.clear()
    await dashboard.sign_in(user="2")
    assert await dashboard.csrf() != first
    assert (await dashboard.client.post("/logout", data={"csrf_token": first})).status == 403


async def test_cookie_is_secure_behind_an_https_public_url(web_store: IngestStore) -> None:
    board = await start_dashboard(web_store, public_url="https://stats.example.org")
    try:
        url = board.link()
        assert url.startswith("https://stats.example.org/login?t=")
        response = await board.client.post("/login", data={"t": board.token_of(url)}, allow_redirects=False)
        assert SimpleCookie(response.headers["Set-Cookie"])["cohortbot_session"]["secure"] is True
    finally:
        await board.client.close()


async def test_no_secret_means_no_links_and_no_sign_in(web_store: IngestStore) -> None:
    board = await start_dashboard(web_store, secret=None)
    try:
        identity = DashboardIdentity(board.ctx.community_id, "server", "owner", None)
        with pytest.raises(NoSecretError, match="COHORTBOT_SECRET"):
            issue_login_link(board.ctx.engine, board.ctx.settings, None, identity, board.clock.now())
        response = await board.client.get("/login?t=abc.def")
        assert response.status == 503
        assert "COHORTBOT_SECRET" in await response.text()
    finally:
        await board.client.close()


async def test_security_headers_are_on_every_response(dashboard: Dashboard) -> None:
    responses = [
        await dashboard.client.get("/"),  # 401
        await dashboard.client.get("/login?t=x.y"),  # 403
        await dashboard.client.get("/healthz"),
        await dashboard.client.get("/static/live.js"),
        await dashboard.client.get("/static/no-such-file.js"),  # 404
    ]
    await dashboard.sign_in()
    responses.append(await dashboard.client.get("/"))
    responses.append(await dashboard.client.get("/no-such-page"))
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in SECURITY_HEADERS["Content-Security-Policy"]


async def test_the_overview_has_no_inline_script(dashboard: Dashboard) -> None:
    await dashboard.sign_in()
    page = await (await dashboard.client.get("/")).text()
    assert '<script src="/static/live.js" defer></script>' in page
    assert "<script>" not in page
