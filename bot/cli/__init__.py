"""The ``cohortbot`` command line.

Every command that touches the database takes ``--config PATH`` (default: ``$COHORTBOT_CONFIG``, else
``./cohortbot.toml`` when it exists, else built-in defaults with ``sqlite:///cohortbot.db``). Errors are one
clear line each on stderr; exit status 2 means bad input (config, arguments), 1 means the command failed.

Each command group lives in its own module; this one builds the parser and runs a command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from bot import __version__
from bot.cli.check_config import cmd_check_config
from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, as_of_date, database_error, positive_int
from bot.cli.dashboard import add_dashboard_commands
from bot.cli.db import cmd_db_rebuild_rollups, cmd_db_status, cmd_db_upgrade
from bot.cli.db_keep import cmd_db_backup, cmd_db_copy, cmd_db_verify
from bot.cli.forget import PLATFORMS, cmd_forget
from bot.cli.imports import cmd_import_discord, cmd_import_telegram, time_zone
from bot.cli.local import cmd_console, cmd_demo
from bot.cli.reports import cmd_digest, cmd_jobs, cmd_nudges, cmd_report
from bot.cli.run import cmd_run
from bot.config import load_secrets
from bot.redaction import RedactingStream, configure_logging, install_process_hooks

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "build_parser",
    "cmd_check_config",
    "cmd_console",
    "cmd_db_backup",
    "cmd_db_copy",
    "cmd_db_rebuild_rollups",
    "cmd_db_status",
    "cmd_db_upgrade",
    "cmd_db_verify",
    "cmd_demo",
    "cmd_digest",
    "cmd_forget",
    "cmd_import_discord",
    "cmd_import_telegram",
    "cmd_jobs",
    "cmd_nudges",
    "cmd_report",
    "cmd_run",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``cohortbot`` command."""
    parser = argparse.ArgumentParser(
        prog="cohortbot",
        description="Logs, analyses and grows a paid programmer community on Discord and Telegram.",
    )
    parser.add_argument("--version", action="version", version=f"cohortbot {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO for `run`, WARNING for everything else",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text (default), or json: one JSON object per line (time, level, logger, message), for log shippers",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            metavar="PATH",
            help="TOML config (default: $COHORTBOT_CONFIG, else ./cohortbot.toml, else built-in defaults)",
        )

    p = sub.add_parser("demo", help="see what cohortbot does, on a simulated community", description=cmd_demo.__doc__)
    p.add_argument("--members", type=positive_int, default=2000, metavar="N", help="members (default: 2000)")
    p.add_argument("--weeks", type=positive_int, default=26, metavar="W", help="weeks simulated (default: 26)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="same seed, same community (default: 1)")
    p.add_argument("--out", default="cohortbot-demo", metavar="DIR", help="default: ./cohortbot-demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("console", help="talk to the bot in the terminal", description=cmd_console.__doc__)
    p.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config (default: $COHORTBOT_CONFIG, else ./cohortbot.toml, else the demo's database)",
    )
    p.add_argument("--admin", action="append", metavar="NAME", help="a member who may use admin commands")
    p.set_defaults(func=cmd_console)

    p = sub.add_parser("run", help="run the bot", description=cmd_run.__doc__)
    config_option(p)
    p.set_defaults(func=cmd_run, default_log_level="INFO")

    p = sub.add_parser("check-config", help="validate a config file", description=cmd_check_config.__doc__)
    p.add_argument("path", nargs="?", help="the TOML file to check (default: $COHORTBOT_CONFIG, else ./cohortbot.toml)")
    p.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", help="database schema and maintenance", description="Database schema and maintenance.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, short in (
        ("upgrade", cmd_db_upgrade, "create or migrate the schema (after installing a new version)"),
        ("status", cmd_db_status, "the schema revision, and whether it needs an upgrade"),
        ("rebuild-rollups", cmd_db_rebuild_rollups, "recompute every rollup from raw events"),
    ):
        # The docstring is the long help; its reST literals (``x``) read as plain text on a terminal.
        doc = (func.__doc__ or "").strip().replace("``", "")
        p = db_sub.add_parser(name, help=short, description=doc)
        config_option(p)
        p.set_defaults(func=func)
    p = db_sub.add_parser(
        "backup", help="a consistent copy of the SQLite file, while the bot runs", description=cmd_db_backup.__doc__
    )
    p.add_argument("path", metavar="PATH", help="the backup file to write")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")
    config_option(p)
    p.set_defaults(func=cmd_db_backup)
    p = db_sub.add_parser(
        "verify", help="integrity, schema, rollups against raw events", description=cmd_db_verify.__doc__
    )
    config_option(p)
    p.set_defaults(func=cmd_db_verify)
    p = db_sub.add_parser("copy", help="move the SQLite database to PostgreSQL", description=cmd_db_copy.__doc__)
    p.add_argument("--to", required=True, metavar="URL", help="an empty PostgreSQL database: postgresql://user@host/db")
    config_option(p)
    p.set_defaults(func=cmd_db_copy)

    imp = sub.add_parser("import", help="import history from platform exports", description="Import history.")
    imp_sub = imp.add_subparsers(dest="import_command", metavar="SOURCE", required=True)
    p = imp_sub.add_parser(
        "discord-export", help="DiscordChatExporter CSV/JSON", description=cmd_import_discord.__doc__
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="export files or folders (searched recursively)")
    config_option(p)
    p.add_argument("--community", metavar="NAME", help="the community to import into (default: [community] name)")
    p.set_defaults(func=cmd_import_discord)
    p = imp_sub.add_parser(
        "telegram-export", help="Telegram Desktop result.json", description=cmd_import_telegram.__doc__
    )
    p.add_argument("path", metavar="RESULT_JSON", help="result.json, or the export folder that holds it")
    config_option(p)
    p.add_argument("--community", metavar="NAME", help="the community to import into (default: [community] name)")
    p.add_argument(
        "--timezone",
        type=time_zone,
        default=ZoneInfo("UTC"),
        metavar="ZONE",
        help="the exporting computer's zone, for old exports without date_unixtime (default: UTC)",
    )
    p.set_defaults(func=cmd_import_telegram)

    p = sub.add_parser("report", help="activity, cohorts, members at risk, sales", description=cmd_report.__doc__)
    config_option(p)
    p.add_argument("--community", metavar="NAME", help="default: [community] name")
    p.add_argument("--as-of", type=as_of_date, metavar="YYYY-MM-DD", help="the last day included (default: today)")
    p.add_argument("--weeks", type=positive_int, default=12, metavar="N", help="weeks shown (default: 12)")
    p.add_argument("--format", choices=["text", "json", "html"], default="text", help="default: text")
    p.add_argument("--out", metavar="DIR", help="write the report and its PNG charts into DIR")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("digest", help="the weekly owner digest", description=cmd_digest.__doc__)
    config_option(p)
    p.add_argument("--preview", action="store_true", help="only print it: send nothing, claim nothing")
    p.add_argument("--as-of", type=as_of_date, metavar="YYYY-MM-DD", help="the digest of the last week before this day")
    p.add_argument("--out", metavar="DIR", help="also write the digest text and its chart PNGs into DIR")
    p.set_defaults(func=cmd_digest)

    p = sub.add_parser("nudges", help="nudges for inactive members", description=cmd_nudges.__doc__)
    config_option(p)
    p.add_argument("--dry-run", action="store_true", help="show the plan; send and record nothing")
    p.add_argument("--as-of", type=as_of_date, metavar="YYYY-MM-DD", help="plan as of this day's run time")
    p.add_argument("--format", choices=["text", "json"], default="text", help="default: text")
    p.set_defaults(func=cmd_nudges)

    p = sub.add_parser("jobs", help="scheduled jobs: last and next runs", description=cmd_jobs.__doc__)
    config_option(p)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("forget", help="delete a member's data", description=cmd_forget.__doc__)
    config_option(p)
    p.add_argument("--platform", required=True, choices=PLATFORMS)
    p.add_argument("--user", required=True, metavar="USER_ID", help="the member's platform user id")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    p.set_defaults(func=cmd_forget)

    add_dashboard_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cohortbot`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    secrets = load_secrets(os.environ)
    secret_values = [
        s for s in (secrets.telegram_token, secrets.discord_token, secrets.signing_secret, secrets.metrics_token) if s
    ]
    install_process_hooks(secret_values)
    configure_logging(
        args.log_level or getattr(args, "default_log_level", "WARNING"), secret_values, log_format=args.log_format
    )
    # Everything the CLI prints goes through one filter: no secret, and no terminal control from a member's name.
    out = RedactingStream(sys.stdout, secret_values, clean=True)
    err = RedactingStream(sys.stderr, secret_values, clean=True)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code: int = args.func(args)
            except CommandError as exc:
                _error(args, str(exc))
                return exc.code
            except SQLAlchemyError as exc:
                # A locked SQLite file or an unreachable server, wherever the command met it: one line, no
                # traceback, no password; the command's transaction was rolled back.
                _error(args, database_error(args, exc))
                return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `cohortbot ... | head` closed the pipe: not an error; keep Python from complaining at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


def _error(args: argparse.Namespace, message: str) -> None:
    """Say why the command failed: a ``cohortbot: ...`` line, or a JSON log record with ``--log-format json``."""
    if args.log_format == "json":
        # A log shipper reading stderr line by line must not meet the one line that is not JSON.
        logging.getLogger("bot.cli").error("cohortbot: %s", message)
    else:
        print(f"cohortbot: {message}", file=sys.stderr)
