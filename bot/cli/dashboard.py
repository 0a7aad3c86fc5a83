"""``cohortbot dashboard serve|link|revoke``: the web dashboard without the bot, and its logins."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from sqlalchemy import Engine

from bot.cli.common import EXIT_OK, EXIT_USAGE, CommandError, existing_engine, load_config, require_schema
from bot.config import Settings, load_secrets


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 < port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {value!r}")
    return port


def _community_id(engine: Engine, settings: Settings) -> int:
    from storage.ingest import IngestStore

    # Idempotent: the community row the bot or an import created, or a new empty one.
    return IngestStore(engine).register_community(settings.community.name, settings.community.timezone)


def _secret_or_fail() -> str:
    from bot.web.links import NO_SECRET_MESSAGE

    secret = load_secrets(os.environ).signing_secret
    if secret is None:
        raise CommandError(NO_SECRET_MESSAGE, EXIT_USAGE)
    return secret


def cmd_dashboard_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard from the database alone (no bot; figures refresh every [dashboard] refresh_seconds)."""
    from bot.clock import SystemClock
    from bot.web.context import WebContext
    from bot.web.server import WebServer, WebServerError

    settings = load_config(args.config)
    secret = load_secrets(os.environ).signing_secret
    engine = existing_engine(settings)
    require_schema(engine)
    ctx = WebContext(
        settings=settings,
        engine=engine,
        clock=SystemClock(),
        community_id=_community_id(engine, settings),
        signing_secret=secret,
    )
    server = WebServer(ctx, host=args.host, port=args.port)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        print(f"dashboard of {settings.community.name!r} at {server.url}", flush=True)
        if secret is None:
            print("sign-in is off: set COHORTBOT_SECRET to use login links", flush=True)
        else:
            print("sign in with a link from `cohortbot dashboard link` or /dashboard in chat", flush=True)
        print("stop with Ctrl+C", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except WebServerError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        engine.dispose()
    return EXIT_OK


def cmd_dashboard_link(args: argparse.Namespace) -> int:
    """Print a one-time dashboard login link for the owner at the server (valid 10 minutes, usable once)."""
    from bot.clock import SystemClock
    from bot.web.links import SERVER_PLATFORM, SERVER_USER, issue_login_link
    from storage.dashboard_access import DashboardIdentity

    settings = load_config(args.config)
    secret = _secret_or_fail()
    engine = existing_engine(settings)
    try:
        require_schema(engine)
        identity = DashboardIdentity(_community_id(engine, settings), SERVER_PLATFORM, SERVER_USER, "Owner")
        link = issue_login_link(engine, settings, secret, identity, SystemClock().now())
    finally:
        engine.dispose()
    print(link.url)
    print(f"valid until {link.expires_at:%H:%M} UTC, once", flush=True)
    return EXIT_OK


def cmd_dashboard_revoke(args: argparse.Namespace) -> int:
    """End dashboard sessions: everyone's, or one admin's with --platform and --user."""
    from bot.clock import SystemClock
    from storage.dashboard_access import revoke_sessions

    if (args.platform is None) != (args.user is None):
        raise CommandError("give both --platform and --user, or neither (to end every session)", EXIT_USAGE)
    settings = load_config(args.config)
    engine = existing_engine(settings)
    try:
        require_schema(engine)
        count = revoke_sessions(
            engine,
            SystemClock().now(),
            community_id=_community_id(engine, settings),
            platform=args.platform,
            platform_user_id=args.user,
        )
    finally:
        engine.dispose()
    whose = f" of {args.platform} user {args.user}" if args.user is not None else ""
    print(f"ended {count} dashboard session{'' if count == 1 else 's'}{whose}")
    return EXIT_OK


def add_dashboard_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``cohortbot dashboard serve|link|revoke`` on the top-level subparsers."""

    def config_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            metavar="PATH",
            help="TOML config (default: $COHORTBOT_CONFIG, else ./cohortbot.toml, else built-in defaults)",
        )

    dash = sub.add_parser("dashboard", help="the owners' web dashboard", description="The owners' web dashboard.")
    dash_sub = dash.add_subparsers(dest="dashboard_command", metavar="ACTION", required=True)

    p = dash_sub.add_parser("serve", help="serve it from the database alone", description=cmd_dashboard_serve.__doc__)
    config_option(p)
    p.add_argument("--host", metavar="HOST", help="listen address (default: [web] host, 127.0.0.1)")
    p.add_argument("--port", type=_port, metavar="PORT", help="port (default: [web] port, 8787)")
    p.set_defaults(func=cmd_dashboard_serve, default_log_level="INFO")

    p = dash_sub.add_parser("link", help="print a one-time login link", description=cmd_dashboard_link.__doc__)
    config_option(p)
    p.set_defaults(func=cmd_dashboard_link)

    p = dash_sub.add_parser("revoke", help="end dashboard sessions", description=cmd_dashboard_revoke.__doc__)
    config_option(p)
    p.add_argument("--platform", metavar="PLATFORM", help="only this admin's sessions: telegram, discord or server")
    p.add_argument("--user", metavar="USER_ID", help="only this admin's sessions: their platform user id")
    p.set_defaults(func=cmd_dashboard_revoke)
