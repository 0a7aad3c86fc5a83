"""The one web server: builds the aiohttp application (login, pages, live feed, ``/healthz``, ``/metrics``).

``build_web_application`` is what tests drive with aiohttp's test client; :class:`WebServer` listens on
``[web] host``/``port`` inside ``cohortbot run`` or ``cohortbot dashboard serve``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import replace
from typing import Final

from aiohttp import web

from bot.core.ports import WebhookRoutes
from bot.web.auth import WEBHOOKS, add_auth_routes
from bot.web.context import CONTEXT, WebContext
from bot.web.health import ProblemCheck, add_health_routes
from bot.web.links import base_url
from bot.web.live import add_live_routes
from bot.web.metrics import MetricsEndpoint, add_metrics_routes
from bot.web.pages import add_page_routes
from bot.web.security import add_security_headers
from bot.web.webhooks import PaymentWebhooks, add_webhook_routes
from storage.dashboard_access import purge_expired

log = logging.getLogger(__name__)

# An open /live stream never ends on its own: on shutdown the hub closes the streams, and this bounds the wait
# for anything else in flight.
SHUTDOWN_TIMEOUT_SECONDS: Final = 5.0


class WebServerError(RuntimeError):
    """The web server could not start (the port is taken, the address is not this machine's)."""


def build_web_application(
    ctx: WebContext,
    *,
    problems: ProblemCheck | None = None,
    webhooks: WebhookRoutes | None = None,
    payments: PaymentWebhooks | None = None,
    dashboard: bool = True,
    metrics: MetricsEndpoint | None = None,
) -> web.Application:
    """Build the one aiohttp application: the dashboard, ``/healthz``, webhooks.

    Args:
        ctx: What the handlers read (settings, database, clock, community, secret, writer).
        problems: For ``/healthz``: what is not running (``bot/app.py`` watches the writer and scheduler).
        webhooks: POST paths adapters serve here (the Telegram webhook), routed after every dashboard route.
        payments: The payment webhooks (``/webhooks/stripe``, ``/webhooks/checkout``) and checkout pages.
        dashboard: Serve the dashboard's pages and login (off: only ``/healthz``, webhooks and checkout pages).
        metrics: ``/metrics`` (inside ``cohortbot run``); not served when None.

    Returns:
        The application, with security headers on every response and a login required outside ``/login``,
        ``/healthz`` and ``/static/``.
    """
    # Headers first, so that they are added to the 401/403 pages the session check answers with too.
    # 10 MB: Telegram webhook updates may be served here too.
    app = web.Application(client_max_size=10 * 1024 * 1024)
    app[CONTEXT] = ctx
    add_security_headers(app)
    if dashboard:
        add_auth_routes(app)
    add_health_routes(app, problems)
    if metrics is not None:
        add_metrics_routes(app, metrics)
    if payments is not None:
        add_webhook_routes(app, payments)
    if dashboard:
        add_live_routes(app, ctx)
        add_page_routes(app)
    app.router.add_get("/favicon.ico", _no_favicon)
    if webhooks is not None:
        app[WEBHOOKS] = webhooks
        # Last, so that every dashboard route wins; the table is filled later, when the adapters start.
        app.router.add_post("/{webhook_path:.+}", _webhook)
    return app


async def _webhook(request: web.Request) -> web.StreamResponse:
    handler = request.app[WEBHOOKS].handler(request.path)
    if handler is None:
        raise web.HTTPNotFound()
    response: web.StreamResponse = await handler(request)
    return response


async def _no_favicon(request: web.Request) -> web.Response:
    # Browsers ask for it on every first visit; "nothing here" beats a 404 error in the console.
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


class WebServer:
    """Runs the application on ``host:port`` until stopped.

    Usage::

        server = WebServer(ctx)
        await server.start()      # raises WebServerError if the port is taken
        print(server.url)
        await server.stop()
    """

    def __init__(
        self,
        ctx: WebContext,
        *,
        host: str | None = None,
        port: int | None = None,
        problems: ProblemCheck | None = None,
        webhooks: WebhookRoutes | None = None,
        payments: PaymentWebhooks | None = None,
        dashboard: bool = True,
        metrics: MetricsEndpoint | None = None,
    ) -> None:
        """Create a server (nothing listens until :meth:`start`).

        Args:
            ctx: The web context.
            host: Overrides ``[web] host``.
            port: Overrides ``[web] port`` (0 picks a free port, for tests).
            problems: For ``/healthz``.
            webhooks: POST paths adapters serve on this server (the Telegram webhook).
            payments: The payment webhooks and checkout pages.
            dashboard: Serve the dashboard (False when only payment webhooks need the server).
            metrics: ``/metrics``, when the bot runs in this process.
        """
        self.ctx = ctx
        self.host = host if host is not None else ctx.settings.web.host
        self.port = port if port is not None else ctx.settings.web.port
        self.app = build_web_application(
            ctx, problems=problems, webhooks=webhooks, payments=payments, dashboard=dashboard, metrics=metrics
        )
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on the configured address.

        Raises:
            WebServerError: The address is in use or cannot be bound, with what to change.
        """
        # Housekeeping: logins and sessions that can no longer be used are deleted at each start.
        await asyncio.to_thread(purge_expired, self.ctx.engine, self.ctx.clock.now())
        # No access log: the login URL carries a one-time token.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                reason = "the port is already in use (another cohortbot, or another program, listens there)"
            else:
                reason = exc.strerror or str(exc)
            raise WebServerError(
                f"the web server cannot listen on {self.host}:{self.port}: {reason}; "
                "change [web] host/port in the config (or pass --host/--port to `cohortbot dashboard serve`)"
            ) from exc
        self._runner = runner
        addresses = runner.addresses
        if addresses and self.port == 0:
            self.port = int(addresses[0][1])
        log.info("web server listening on %s:%d", self.host, self.port)

    @property
    def url(self) -> str:
        """Where people open it: ``[web] public_url``, else ``http://host:port`` as actually bound."""
        settings = self.ctx.settings
        return base_url(replace(settings, web=replace(settings.web, host=self.host, port=self.port)))

    async def stop(self) -> None:
        """Close the live streams and stop listening. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("web server stopped")
