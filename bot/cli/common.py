"""What every ``cohortbot`` command shares.

Exit statuses, the error a command raises, finding the config and opening the database.
"""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.config import ConfigError, Settings, default_settings, load_settings
from storage.engine import database_error_line, mask_credentials

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A command could not do its job; the message says why and what to do."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        """Create the error with an exit status."""
        super().__init__(message)
        self.code = code


def config_path(arg: str | None) -> Path | None:
    """The config file: ``--config``, else ``$COHORTBOT_CONFIG``, else ``./cohortbot.toml``; None for the defaults."""
    if arg:
        return Path(arg)
    env = os.environ.get("COHORTBOT_CONFIG")
    if env:
        return Path(env)
    local = Path("cohortbot.toml")
    return local if local.exists() else None


def load_config(arg: str | None) -> Settings:
    """The settings of the config :func:`config_path` finds (built-in defaults without one).

    Raises:
        CommandError: The config is invalid (exit status 2).
    """
    path = config_path(arg)
    if path is None:
        return default_settings()
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise CommandError(f"{path}: invalid configuration:\n{exc}", EXIT_USAGE) from exc


def existing_engine(settings: Settings) -> Engine:
    """An engine for a database that must already exist (only ``db upgrade`` creates one).

    Raises:
        CommandError: A SQLite file that does not exist (a typo must not leave an empty database behind).
    """
    from sqlalchemy.engine import make_url

    from storage.engine import make_engine

    url = make_url(settings.storage.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "").expanduser()
        if not path.exists():
            raise CommandError(f"no database at {path}: run `cohortbot db upgrade --config <your config>` first")
    return make_engine(settings.storage.url, busy_timeout_ms=busy_timeout_ms(settings))


def busy_timeout_ms(settings: Settings) -> int:
    """``[storage] busy_timeout_seconds`` in milliseconds, as the engine takes it."""
    return round(settings.storage.busy_timeout_seconds * 1000)


def database_error(args: argparse.Namespace, exc: SQLAlchemyError) -> str:
    """The one line shown for a database error that reached ``main``: busy, unreachable, or what the driver said."""
    try:
        url = load_config(getattr(args, "config", None)).storage.url
    except CommandError:
        # Not a command that reads the config (or it changed meanwhile): mask whatever URL the message quotes.
        orig = getattr(exc, "orig", None) or exc
        return "database: " + mask_credentials(" ".join(str(orig).split("\n[SQL:")[0].split()))
    return database_error_line(exc, url)


def require_schema(engine: Engine) -> None:
    """Make sure the database is at the current schema.

    Raises:
        CommandError: It is not (the message says to run ``cohortbot db upgrade``).
    """
    from bot.schema import SchemaOutdatedError, check_schema

    try:
        check_schema(engine)
    except SchemaOutdatedError as exc:
        engine.dispose()
        raise CommandError(str(exc)) from exc


def as_of_date(value: str) -> date:
    """A ``YYYY-MM-DD`` argument (``--as-of``)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-23, got {value!r}") from None


def positive_int(value: str) -> int:
    """A positive whole-number argument (``--weeks``, ``--members``)."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)
