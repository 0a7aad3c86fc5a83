"""Command line of the benchmarks: ``python -m bench <command> [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench import analytics, commands, dashboard, import_, ingest

# name -> (one-line help, description, add_arguments, run); later benchmarks register here.
COMMANDS: dict[
    str,
    tuple[str, str | None, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]],
] = {
    "ingest": (
        "events/s of the bot's event writer against raw sqlite3 executemany on the same rows",
        ingest.__doc__,
        ingest.add_arguments,
        ingest.run,
    ),
    "analytics": (
        "seconds of a full analytics refresh (report + digest) against DuckDB on the same raw events",
        analytics.__doc__,
        analytics.add_arguments,
        analytics.run,
    ),
    "dashboard": (
        "warm latency of every dashboard page and CSV, and message-to-page time of the live feed",
        dashboard.__doc__,
        dashboard.add_arguments,
        dashboard.run,
    ),
    "commands": (
        "warm latency of /stats, /leaderboard, /inactive and /report through the dispatcher on a big community",
        commands.__doc__,
        commands.add_arguments,
        commands.run,
    ),
    "import": (
        "messages/s of a DiscordChatExporter JSON import (parsing and storing also timed alone)",
        import_.__doc__,
        import_.add_arguments,
        import_.run,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="cohortbot benchmarks. Run one with `python -m bench <command>`; "
        "`python -m bench <command> --help` lists its options.",
    )
    sub = parser.add_subparsers(dest="command", title="commands", metavar="<command>")
    for name, (summary, description, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(
            name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No command: show what there is (a usage listing, not an error).
        parser.print_help()
        return 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
