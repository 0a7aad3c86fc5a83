"""The ``cohortbot`` command line.

Every command that touches the database takes ``--config PATH`` (default: ``$COHORTBOT_CONFIG``, else
``./cohortbot.toml`` when it exists, else built-in defaults with ``sqlite:///cohortbot.db``). Errors are one
clear line each on stderr; exit status 2 means bad input (config, arguments), 1 means the command failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from analytics.safe_text import clean_name
from bot import __version__
from bot.config import ConfigError, Settings, default_settings, load_secrets, load_settings, validate_secrets
from bot.redaction import RedactingStream, configure_logging, install_process_hooks
from storage.engine import database_error_line, mask_credentials

if TYPE_CHECKING:
    from storage.ingest import IngestStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONNECT_WAIT = 60.0  # how long a one-shot command (digest, nudges) waits for an unreachable platform
PLATFORMS = ("discord", "telegram", "console", "simulated")


class CommandError(Exception):
    """A command could not do its job; the message says why and what to do."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        """Create the error with an exit status."""
        super().__init__(message)
        self.code = code


def _config_path(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    env = os.environ.get("COHORTBOT_CONFIG")
    if env:
        return Path(env)
    local = Path("cohortbot.toml")
    return local if local.exists() else None


def _settings(arg: str | None) -> Settings:
    path = _config_path(arg)
    if path is None:
        return default_settings()
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise CommandError(f"{path}: invalid configuration:\n{exc}", EXIT_USAGE) from exc


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file; print "config OK" or every problem with its key."""
    try:
        settings = load_settings(args.path)
    except ConfigError as exc:
        print(f"{args.path}: {len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''}:", file=sys.stderr)
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


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or migrate the database named in ``[storage] url``."""
    from storage.engine import make_engine
    from storage.migrate import current_revision, head_revision, upgrade

    settings = _settings(args.config)
    engine = make_engine(settings.storage.url, busy_timeout_ms=_busy_timeout_ms(settings))
    shown = engine.url.render_as_string(hide_password=True)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot migrate: {database_error_line(exc, settings.storage.url)}") from exc
    finally:
        engine.dispose()
    if before == after:
        print(f"{shown}: already at schema revision {after} (newest: {head_revision()})")
    else:
        print(f"{shown}: upgraded from {before or 'an empty database'} to schema revision {after}")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    """Show the schema revision of the database and whether it needs an upgrade."""
    from storage.migrate import current_revision, head_revision

    settings = _settings(args.config)
    engine = _existing_engine(settings)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot read: {database_error_line(exc, settings.storage.url)}") from exc
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "needs `cohortbot db upgrade`"
    print(f"{shown}: schema revision {current or 'none'}, newest {head}: {state}")
    return EXIT_OK if current == head else EXIT_FAILED


def cmd_db_rebuild_rollups(args: argparse.Namespace) -> int:
    """Recompute every rollup from raw events (after changing ``[community] timezone``)."""
    from storage.engine import writing
    from storage.ingest import IngestStore
    from storage.rollups import rebuild_rollups

    settings = _settings(args.config)
    engine = _existing_engine(settings)
    _require_schema(engine)
    store = IngestStore(engine)
    community_id = store.register_community(settings.community.name, settings.community.timezone)
    with writing(engine).begin() as conn:
        snapshot = rebuild_rollups(conn, community_id)
    engine.dispose()
    print(
        f"rebuilt rollups of {settings.community.name!r} in {settings.community.timezone}: "
        f"{len(snapshot.community_days)} days, {len(snapshot.member_totals)} active members"
    )
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    """Delete everything stored about one member (a data-deletion request); purchases are kept, anonymised."""
    from storage.ingest import IngestStore
    from storage.writer import EventWriter

    settings = _settings(args.config)
    if not args.yes:
        raise CommandError(
            f"this deletes all data of {args.platform} user {args.user} in {settings.community.name!r}; "
            "run again with --yes to confirm",
            EXIT_USAGE,
        )
    engine = _existing_engine(settings)
    _require_schema(engine)
    store = IngestStore(engine)
    store.register_community(settings.community.name, settings.community.timezone)

    async def forget() -> object:
        writer = EventWriter(store)
        try:
            return await writer.forget_member(settings.community.name, args.platform, args.user)
        finally:
            await writer.stop()

    report = asyncio.run(forget())
    engine.dispose()
    if report is None:
        print(f"nothing is stored about {args.platform} user {args.user}")
        return EXIT_OK
    from storage.deletion import DeletionReport

    assert isinstance(report, DeletionReport)
    deleted = ", ".join(f"{table}: {n}" for table, n in sorted(report.deleted.items()))
    print(f"deleted {deleted}")
    if report.detached:
        kept = ", ".join(f"{table}: {n}" for table, n in sorted(report.detached.items()))
        print(f"kept without the person (accounting and others' replies): {kept}")
    if report.scrubbed:
        scrubbed = ", ".join(f"{table}: {n}" for table, n in sorted(report.scrubbed.items()))
        print(f"their id and name taken out of text elsewhere: {scrubbed}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the bot: log activity and answer commands on the enabled platforms until Ctrl+C or SIGTERM."""
    from bot.adapters import build_adapters
    from bot.app import TaskDiedError, build_app, serve
    from bot.core.ports import AdapterStartError

    settings = _settings(args.config)
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
    engine = _existing_engine(settings)
    _require_schema(engine)
    app = build_app(settings, secrets=secrets, adapters=build_adapters, engine=engine)
    try:
        asyncio.run(serve(app))
    except AdapterStartError as exc:
        raise CommandError(f"cannot start: {exc}") from exc
    except TaskDiedError as exc:
        # Everything received was stored before this; a non-zero exit makes a service manager restart the bot.
        raise CommandError(f"stopped: {exc}; start it again (a service manager restarts it)") from exc
    return EXIT_OK


def _community_id(engine: Engine, settings: Settings) -> int:
    from bot.reporting import ReportError, resolve_community

    try:
        return resolve_community(engine, settings.community.name).id
    except ReportError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc


def _check_day(day: date | None) -> None:
    from bot.reporting import ReportError, check_report_day

    if day is not None:
        try:
            check_report_day(day)
        except ReportError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from exc


def _local_start(day: date, settings: Settings) -> datetime:
    return datetime.combine(day, time(0), tzinfo=settings.community.tz)


def _send_job(settings: Settings, engine: Engine, job: str) -> str:
    """Start the enabled platforms without the schedule, run one job through them, stop; returns its outcome."""
    from bot.adapters import build_adapters
    from bot.app import build_app
    from bot.core.ports import AdapterStartError

    secrets = load_secrets(os.environ)
    problems = validate_secrets(settings, secrets)
    if problems:
        raise CommandError("cannot connect:\n  " + "\n  ".join(problems), EXIT_USAGE)
    app = build_app(settings, secrets=secrets, adapters=build_adapters, engine=engine)

    async def run() -> str:
        try:
            # The adapters retry an unreachable platform for as long as it takes; a one-shot command gives up.
            await asyncio.wait_for(app.start(schedule=False), CONNECT_WAIT)
        except TimeoutError:
            await app.stop()
            raise CommandError(
                f"cannot connect: the platforms did not answer within {CONNECT_WAIT:.0f} s (the log above says why)"
            ) from None
        try:
            result = await app.scheduler.run(job)
        finally:
            await app.stop()
        if result.outcome == "failed":
            raise CommandError(f"{job} failed: {result.detail}")
        return f"{job}: {result.outcome}: {result.detail}"

    try:
        return asyncio.run(run())
    except AdapterStartError as exc:
        raise CommandError(f"cannot connect: {exc}") from exc


def cmd_digest(args: argparse.Namespace) -> int:
    """Print the weekly owner digest for the last complete week; without --preview, also send it (once per week)."""
    from bot.clock import SystemClock
    from bot.core.digest import build_digest

    settings = _settings(args.config)
    if args.as_of and not args.preview:
        raise CommandError("--as-of only works with --preview: a digest is sent for the week that is due now", 2)
    _check_day(args.as_of)
    if not args.preview and not (settings.telegram.enabled or settings.discord.enabled):
        raise CommandError(
            "no platform is enabled to send the digest to; use --preview to print it, or enable [telegram] "
            "or [discord] in the config",
            EXIT_USAGE,
        )
    engine = _existing_engine(settings)
    _require_schema(engine)
    community_id = _community_id(engine, settings)
    now = _local_start(args.as_of, settings) if args.as_of else SystemClock().now()
    digest = build_digest(engine, settings, community_id, now=now, for_admins=True)
    from bot.core.markup import render_plain

    text = render_plain(digest.text)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"digest-{digest.week_label}.txt").write_text(text + "\n", encoding="utf-8")
        print(f"\nwritten: {out / f'digest-{digest.week_label}.txt'}")
        for chart in digest.charts:
            (out / chart.filename).write_bytes(chart.data)
            print(f"written: {out / chart.filename}")
    if not args.preview:
        print(_send_job(settings, engine, "digest"), file=sys.stderr)
    engine.dispose()
    return EXIT_OK


def cmd_nudges(args: argparse.Namespace) -> int:
    """Plan (--dry-run) or run the nudges for inactive members: who, who is held out, who is skipped and why."""
    from bot.clock import SystemClock
    from bot.core.nudges import plan_nudges

    settings = _settings(args.config)
    if args.as_of and not args.dry_run:
        raise CommandError("--as-of only works with --dry-run: real nudges go out now", EXIT_USAGE)
    _check_day(args.as_of)
    engine = _existing_engine(settings)
    _require_schema(engine)
    community_id = _community_id(engine, settings)
    if not args.dry_run:
        if not settings.nudges.enabled:
            raise CommandError("nudges are off: set `enabled = true` under [nudges] first", EXIT_USAGE)
        print(_send_job(settings, engine, "nudges"))
        engine.dispose()
        return EXIT_OK
    if args.as_of:
        now = datetime.combine(args.as_of, settings.nudges.run_time, tzinfo=settings.community.tz)
    else:
        now = SystemClock().now()
    platforms = {"telegram", "discord"}  # a dry run shows everyone a run could reach
    plan = plan_nudges(engine, settings, community_id, now=now, platforms=platforms)
    engine.dispose()
    if args.format == "json":
        print(plan.to_json())
        return EXIT_OK
    print(f"nudge plan for {settings.community.name} on {plan.as_of.isoformat()} (dry run: nothing is sent)")
    print(f"  eligible: {plan.eligible}")
    print(f"  would nudge: {len(plan.planned)}")
    for candidate in plan.planned:
        seen = candidate.last_active_at.date().isoformat() if candidate.last_active_at else "never"
        print(f"    {clean_name(candidate.name)} ({candidate.platform} {candidate.user_id}, last active {seen})")
    print(f"  held out (measured, not messaged): {len(plan.holdout)}")
    for reason, count in sorted(plan.skipped.items()):
        print(f"  skipped, {reason.replace('_', ' ')}: {count}")
    if not settings.nudges.enabled:
        print("note: [nudges] enabled = false, so the bot sends none of these", file=sys.stderr)
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    """Show each scheduled job's last run (outcome, when, where) and next run."""
    from bot.clock import SystemClock
    from bot.scheduler import Scheduler, job_names
    from storage.job_runs import last_job_runs

    settings = _settings(args.config)
    engine = _existing_engine(settings)
    _require_schema(engine)
    community_id = _community_id(engine, settings)
    clock = SystemClock()
    scheduler = Scheduler(settings=settings, engine=engine, clock=clock, adapters=[], community_id=lambda: community_id)
    upcoming = scheduler.next_runs(clock.now())
    last = last_job_runs(engine, community_id)
    engine.dispose()
    tz = settings.community.tz

    def local(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else "-"

    print(f"jobs of {settings.community.name} (times in {settings.community.timezone})")
    print(f"{'job':<10} {'next run':<17} {'last run':<17} {'outcome':<8} detail")
    for name, what in job_names().items():
        run = last.get(name)
        nxt = local(upcoming[name]) if name in upcoming else "off"
        detail = clean_name((run.detail or "").splitlines()[0]) if run and run.detail else ""
        outcome = run.outcome if run else "never"
        print(f"{name:<10} {nxt:<17} {local(run.started_at) if run else '-':<17} {outcome:<8} {detail or what}")
    return EXIT_OK


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

    path = _config_path(args.config)
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


def _importer_store(args: argparse.Namespace) -> tuple[Engine, IngestStore, str, Settings]:
    from storage.communities import find_community
    from storage.ingest import IngestStore

    settings = _settings(args.config)
    engine = _existing_engine(settings)
    _require_schema(engine)
    community = args.community or settings.community.name
    with engine.connect() as conn:
        existing = find_community(conn, community)
    # An existing community keeps the zone its rollups were bucketed in; a new one takes the config's.
    timezone = existing.timezone if existing else settings.community.timezone
    store = IngestStore(engine, store_text=settings.storage.store_text)
    store.register_community(community, timezone)
    return engine, store, community, settings


def cmd_import_discord(args: argparse.Namespace) -> int:
    """Import DiscordChatExporter CSV or JSON exports (files or folders); safe to run again."""
    from bot.importers.progress import Progress
    from bot.importers.runner import ExportImportError, import_discord_export

    engine, store, community, settings = _importer_store(args)
    try:
        summary = import_discord_export(
            store, community, [Path(p) for p in args.paths], store_text=settings.storage.store_text, progress=Progress()
        )
    except ExportImportError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        engine.dispose()
    print(summary.line())
    return EXIT_OK


def cmd_import_telegram(args: argparse.Namespace) -> int:
    """Import a Telegram Desktop JSON export (result.json or its folder); safe to run again."""
    from bot.importers.progress import Progress
    from bot.importers.runner import ExportImportError, import_telegram_export

    engine, store, community, settings = _importer_store(args)
    try:
        summary = import_telegram_export(
            store,
            community,
            Path(args.path),
            store_text=settings.storage.store_text,
            progress=Progress(),
            local_zone=args.timezone,
        )
    except ExportImportError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        engine.dispose()
    print(summary.line())
    return EXIT_OK


def _zone(value: str) -> ZoneInfo:
    """An IANA time zone for ``--timezone``."""
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected an IANA time zone like Europe/Berlin or UTC, got {value!r}"
        ) from None


def cmd_report(args: argparse.Namespace) -> int:
    """Show who is active, which cohorts stay, who is drifting away and what sells."""
    from analytics.render import render_html, render_json, render_text, write_report
    from bot.clock import SystemClock
    from bot.reporting import ReportError, ReportRequest, build_community_report

    settings = _settings(args.config)
    engine = _existing_engine(settings)
    _require_schema(engine)
    request = ReportRequest(
        community=args.community or settings.community.name,
        as_of=args.as_of,
        weeks=args.weeks,
        inactive_after_days=settings.nudges.inactive_after_days,
        top_n=settings.digest.top_members,
    )
    try:
        report, hint = build_community_report(engine, request, now=SystemClock().now())
    except ReportError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    finally:
        engine.dispose()
    if hint:
        print(f"note: {hint}", file=sys.stderr)
    if args.out:
        written = write_report(report, Path(args.out), args.format)
        for path in written:
            print(path)
        return EXIT_OK
    if args.format == "json":
        print(render_json(report))
    elif args.format == "html":
        from analytics.charts import render_charts

        print(render_html(report, render_charts(report)))
    else:
        print(render_text(report), end="")
    return EXIT_OK


def _as_of(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-23, got {value!r}") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def _existing_engine(settings: Settings) -> Engine:
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
    return make_engine(settings.storage.url, busy_timeout_ms=_busy_timeout_ms(settings))


def _busy_timeout_ms(settings: Settings) -> int:
    return round(settings.storage.busy_timeout_seconds * 1000)


def _database_error(args: argparse.Namespace, exc: SQLAlchemyError) -> str:
    """The one line shown for a database error that reached ``main``: busy, unreachable, or what the driver said."""
    try:
        url = _settings(getattr(args, "config", None)).storage.url
    except CommandError:
        # Not a command that reads the config (or it changed meanwhile): mask whatever URL the message quotes.
        orig = getattr(exc, "orig", None) or exc
        return "database: " + mask_credentials(" ".join(str(orig).split("\n[SQL:")[0].split()))
    return database_error_line(exc, url)


def _require_schema(engine: Engine) -> None:
    from bot.app import SchemaOutdatedError, check_schema

    try:
        check_schema(engine)
    except SchemaOutdatedError as exc:
        engine.dispose()
        raise CommandError(str(exc)) from exc


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            metavar="PATH",
            help="TOML config (default: $COHORTBOT_CONFIG, else ./cohortbot.toml, else built-in defaults)",
        )

    p = sub.add_parser("demo", help="see what cohortbot does, on a simulated community", description=cmd_demo.__doc__)
    p.add_argument("--members", type=_positive, default=2000, metavar="N", help="members (default: 2000)")
    p.add_argument("--weeks", type=_positive, default=26, metavar="W", help="weeks simulated (default: 26)")
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
    p.add_argument("path", help="the TOML file to check")
    p.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", help="database schema and maintenance", description="Database schema and maintenance.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func in (
        ("upgrade", cmd_db_upgrade),
        ("status", cmd_db_status),
        ("rebuild-rollups", cmd_db_rebuild_rollups),
    ):
        doc = (func.__doc__ or "").strip()
        p = db_sub.add_parser(name, help=doc.rstrip("."), description=doc)
        config_option(p)
        p.set_defaults(func=func)

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
        type=_zone,
        default=ZoneInfo("UTC"),
        metavar="ZONE",
        help="the exporting computer's zone, for old exports without date_unixtime (default: UTC)",
    )
    p.set_defaults(func=cmd_import_telegram)

    p = sub.add_parser("report", help="activity, cohorts, members at risk, sales", description=cmd_report.__doc__)
    config_option(p)
    p.add_argument("--community", metavar="NAME", help="default: [community] name")
    p.add_argument("--as-of", type=_as_of, metavar="YYYY-MM-DD", help="the last day included (default: today)")
    p.add_argument("--weeks", type=_positive, default=12, metavar="N", help="weeks shown (default: 12)")
    p.add_argument("--format", choices=["text", "json", "html"], default="text", help="default: text")
    p.add_argument("--out", metavar="DIR", help="write the report and its PNG charts into DIR")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("digest", help="the weekly owner digest", description=cmd_digest.__doc__)
    config_option(p)
    p.add_argument("--preview", action="store_true", help="only print it: send nothing, claim nothing")
    p.add_argument("--as-of", type=_as_of, metavar="YYYY-MM-DD", help="the digest of the last week before this day")
    p.add_argument("--out", metavar="DIR", help="also write the digest text and its chart PNGs into DIR")
    p.set_defaults(func=cmd_digest)

    p = sub.add_parser("nudges", help="nudges for inactive members", description=cmd_nudges.__doc__)
    config_option(p)
    p.add_argument("--dry-run", action="store_true", help="show the plan; send and record nothing")
    p.add_argument("--as-of", type=_as_of, metavar="YYYY-MM-DD", help="plan as of this day's run time")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cohortbot`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    secrets = load_secrets(os.environ)
    secret_values = [s for s in (secrets.telegram_token, secrets.discord_token, secrets.signing_secret) if s]
    install_process_hooks(secret_values)
    configure_logging(args.log_level or getattr(args, "default_log_level", "WARNING"), secret_values)
    # Everything the CLI prints goes through one filter: no secret, and no terminal control from a member's name.
    out = RedactingStream(sys.stdout, secret_values, clean=True)
    err = RedactingStream(sys.stderr, secret_values, clean=True)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code: int = args.func(args)
            except CommandError as exc:
                print(f"cohortbot: {exc}", file=sys.stderr)
                return exc.code
            except SQLAlchemyError as exc:
                # A locked SQLite file or an unreachable server, wherever the command met it: one line, no
                # traceback, no password; the command's transaction was rolled back.
                print(f"cohortbot: {_database_error(args, exc)}", file=sys.stderr)
                return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `cohortbot ... | head` closed the pipe: not an error; keep Python from complaining at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
