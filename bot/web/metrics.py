"""``/metrics``: the Prometheus scrape endpoint, for the monitor on this host or one that holds the token.

Who may read it: a request from the loopback address that carries no ``X-Forwarded-For``/``Forwarded``/
``X-Real-IP`` header (a reverse proxy on the same host connects from 127.0.0.1 too, and would otherwise make every
public request look local), or any request with ``Authorization: Bearer <COHORTBOT_METRICS_TOKEN>``. A wrong token
gets 401, everyone else 403. The figures hold no member data, but they do show how busy and how profitable a
community is, so they are not public either.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

log = logging.getLogger(__name__)

# Headers a reverse proxy adds: their presence means the connection's address is the proxy's, not the client's.
PROXY_HEADERS: Final = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """What ``/metrics`` serves and who may read it.

    Attributes:
        render: The metrics in the Prometheus text format (``Metrics.render``).
        content_type: Its ``Content-Type`` header.
        token: ``COHORTBOT_METRICS_TOKEN``; None: only local requests are let in.
    """

    render: Callable[[], bytes]
    content_type: str
    token: str | None = None


METRICS: web.AppKey[MetricsEndpoint] = web.AppKey("cohortbot_metrics", MetricsEndpoint)


def is_local(request: web.Request) -> bool:
    """Whether the request came straight from this host (loopback, and not relayed by a proxy)."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:  # a Unix socket, or no address at all: nothing proves it is local
        return False


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def metrics(request: web.Request) -> web.Response:
    """200 with the metrics for a local request or the right bearer token; 401 for a wrong token; 403 otherwise."""
    endpoint = request.app[METRICS]
    given = _bearer(request)
    if given is not None:
        expected = endpoint.token or ""
        # Constant time, so the token cannot be guessed a character at a time; never logged.
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("refused /metrics to %s: wrong or unknown bearer token", request.remote)
            return web.Response(
                status=401,
                text="wrong token\n",
                headers={"WWW-Authenticate": 'Bearer realm="cohortbot metrics"', "Cache-Control": "no-store"},
            )
    elif not is_local(request):
        return web.Response(
            status=403,
            text="/metrics is readable from this host, or with Authorization: Bearer <COHORTBOT_METRICS_TOKEN>\n",
            headers={"Cache-Control": "no-store"},
        )
    return web.Response(
        body=endpoint.render(),
        headers={"Content-Type": endpoint.content_type, "Cache-Control": "no-store"},
    )


def add_metrics_routes(app: web.Application, endpoint: MetricsEndpoint) -> None:
    """Install ``GET /metrics``."""
    app[METRICS] = endpoint
    app.router.add_get("/metrics", metrics)
