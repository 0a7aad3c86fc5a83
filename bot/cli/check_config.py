"""``cohortbot check-config``: validate a config file."""

from __future__ import annotations

import argparse
import os
import sys

from analytics.formatting import plural
from bot.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    config_path,
)
from bot.config import ConfigError, load_secrets, load_settings, validate_secrets


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file; print "config OK" or every problem with its key.

    Without PATH it checks the config the other commands would use: ``$COHORTBOT_CONFIG``, else ``./cohortbot.toml``.
    """
    path = config_path(args.path)
    if path is None:
        raise CommandError("no config to check: copy config.example.toml to ./cohortbot.toml, or pass PATH", EXIT_USAGE)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(f"{path}: {plural(len(exc.errors), 'problem')}:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_USAGE
    print("config OK")
    enabled = [
        name for name, on in (("telegram", settings.telegram.enabled), ("discord", settings.discord.enabled)) if on
    ]
    print(f"  community: {settings.community.name} ({settings.community.timezone})")
    from sqlalchemy.engine import make_url

    print(f"  storage: {make_url(settings.storage.url).render_as_string(hide_password=True)}")
    print(f"  platforms: {', '.join(enabled) if enabled else 'none enabled'}")
    print(f"  courses: {', '.join(c.id for c in settings.courses) if settings.courses else 'none'}")
    for problem in validate_secrets(settings, load_secrets(os.environ)):
        print(f"  before `cohortbot run`: {problem}")
    return EXIT_OK
