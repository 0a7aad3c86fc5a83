"""Who may read ``/metrics`` on the one web server: this host, or a scraper with the bearer token; no dashboard login.

The real aiohttp application with the dashboard on (so its login wall is in place), driven over HTTP from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.metrics import CONTENT_TYPE, Metrics
from bot.web.context import WebContext
from bot.web.metrics import MetricsEndpoint
from bot.web.server import build_web_application
from storage.ingest import IngestStore
from tests.helpers.fake_actions import FakeClock
from tests.web.conftest import COMMUNITY_NAME, NOW, SECRET, settings

TOKEN = "prometheus-" + "t" * 30


async def client_for(store: IngestStore, token: str | None) -> TestClient:
    metrics = Metrics()
    metrics.command_answered("stats", 0.02)
    ctx = WebContext(
        settings=settings(),
        engine=store.engine,
        clock=FakeClock(NOW),
        community_id=store.community_id(COMMUNITY_NAME),
        signing_secret=SECRET,
    )
    app = build_web_application(ctx, metrics=MetricsEndpoint(metrics.render, CONTENT_TYPE, token))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def with_token(web_store: IngestStore) -> AsyncIterator[TestClient]:
    client = await client_for(web_store, TOKEN)
    yield client
    await client.close()


async def test_a_local_scrape_needs_no_login_and_gets_the_prometheus_text(with_token: TestClient) -> None:
    response = await with_token.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    body = await response.text()
    assert 'cohortbot_command_seconds_count{command="stats"} 1.0' in body
    # The dashboard's pages still want a login: only /metrics is open to this host.
    assert (await with_token.get("/")).status == 401


@pytest.mark.parametrize(
    "proxy_header", [{"X-Forwarded-For": "198.51.100.7"}, {"Forwarded": "for=198.51.100.7"}, {"X-Real-IP": "1.2.3.4"}]
)
async def test_a_request_relayed_by_a_proxy_needs_the_token(
    with_token: TestClient,
    proxy_header: dict[str, str],
) -> None:
    refused = await with_token.get("/metrics", headers=proxy_header)
    assert refused.status == 403
    assert "COHORTBOT_METRICS_TOKEN" in await refused.text()
    assert (await with_token.get("/metrics", headers=proxy_header | {"Authorization": f"Bearer {TOKEN}"})).status == 200
    wrong = await with_token.get("/metrics", headers=proxy_header | {"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status == 401
    assert TOKEN not in await wrong.text()
    basic = await with_token.get("/metrics", headers=proxy_header | {"Authorization": f"Basic {TOKEN}"})
    assert basic.status == 401


async def test_without_a_configured_token_no_bearer_gets_in(web_store: IngestStore) -> None:
    client = await client_for(web_store, None)
    try:
        assert (await client.get("/metrics", headers={"Authorization": "Bearer "})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer anything"})).status == 401
        assert (await client.get("/metrics", headers={"X-Forwarded-For": "10.0.0.1"})).status == 403
        assert (await client.get("/metrics")).status == 200
    finally:
        await client.close()
