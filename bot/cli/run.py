"""``cohortbot run``: the bot on the enabled platforms until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os

from bot.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    existing_engine,
    load_config,
    require_schema,
)
from bot.config import load_secrets, validate_secrets
from storage.leadership import AlreadyRunningError, SqliteFileLock, sqlite_lock_path


def cmd_run(args: argparse.Namespace) -> int:
    """Run the bot: log activity and answer commands on the enabled platforms until Ctrl+C or SIGTERM."""
    from bot.adapters import build_adapters
    from bot.app import TaskDiedError, build_app, serve
    from bot.core.ports import AdapterStartError
    from bot.web.server import WebServerError

    settings = load_config(args.config)
    if not (settings.telegram.enabled or settings.discord.enabled):
        raise CommandError(
            "nothing to run: no platform is enabled; set `enabled = true` under [telegram] or [discord] "
            "in the config (`cohortbot check-config PATH` checks it)",
            EXIT_USAGE,
        )
    secrets = load_secrets(os.environ)
    problems = validate_secrets(settings, secrets)
    if problems:
        raise CommandError("cannot start:\n  " + "\n  ".join(problems), EXIT_USAGE)
    engine = existing_engine(settings)
    require_schema(engine)
    # SQLite is one running bot per database file (two would both run the jobs); PostgreSQL elects a leader.
    lock_path = sqlite_lock_path(settings.storage.url)
    process_lock = SqliteFileLock(lock_path) if lock_path is not None else None
    if process_lock is not None:
        try:
            process_lock.acquire()
        except AlreadyRunningError as exc:
            engine.dispose()
            raise CommandError(f"cannot start: {exc}") from exc
    try:
        app = build_app(settings, secrets=secrets, adapters=build_adapters, engine=engine)
        try:
            asyncio.run(serve(app))
        except (AdapterStartError, WebServerError) as exc:
            raise CommandError(f"cannot start: {exc}") from exc
        except TaskDiedError as exc:
            # Everything received was stored before this; a non-zero exit makes a service manager restart the bot.
            raise CommandError(f"stopped: {exc}; start it again (a service manager restarts it)") from exc
    finally:
        if process_lock is not None:
            process_lock.release()
    return EXIT_OK
