"""``cohortbot demo`` and ``cohortbot console``: the local runtimes, with no chat platform."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    config_path,
)
from bot.config import ConfigError


def cmd_demo(args: argparse.Namespace) -> int:
    """Play a simulated community for a few months and show what cohortbot makes of it: no token, no config."""
    from bot.demo import DemoError, run_demo

    try:
        run_demo(members=args.members, weeks=args.weeks, seed=args.seed, out=Path(args.out), stream=sys.stdout)
    except DemoError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    return EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    """Talk to the bot in the terminal: post as members, run any command, see digests and nudges."""
    from bot.console import ConsoleError, console_settings, run_console

    path = config_path(args.config)
    try:
        settings = console_settings(path)
    except ConfigError as exc:
        raise CommandError(f"{path}: invalid configuration:\n{exc}", EXIT_USAGE) from exc
    except ConsoleError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    try:
        return run_console(settings, stdin=sys.stdin, stdout=sys.stdout, admins=tuple(args.admin or ()))
    except ConsoleError as exc:
        raise CommandError(str(exc)) from exc
