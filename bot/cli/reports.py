"""``cohortbot report``, ``digest``, ``nudges`` and ``jobs``: what the owner reads, and the jobs run on demand."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import date, datetime, time
from pathlib import Path

from sqlalchemy import Engine

from analytics.safe_text import clean_name
from bot.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    existing_engine,
    load_config,
    require_schema,
)
from bot.config import Settings, load_secrets, validate_secrets

CONNECT_WAIT = 60.0  # how long a one-shot command (digest, nudges) waits for an unreachable platform


def cmd_report(args: argparse.Namespace) -> int:
    """Show who is active, which cohorts stay, who is drifting away and what sells."""
    from analytics.render import render_html, render_json, render_text, write_report
    from bot.clock import SystemClock
    from bot.reporting import ReportError, ReportRequest, build_community_report

    settings = load_config(args.config)
    engine = existing_engine(settings)
    require_schema(engine)
    request = ReportRequest(
        community=args.community or settings.community.name,
        as_of=args.as_of,
        weeks=args.weeks,
        inactive_after_days=settings.nudges.inactive_after_days,
        top_n=settings.digest.top_members,
        help=settings.help,
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


def _community_id(engine: Engine, settings: Settings) -> int:
    from bot.reporting import ReportError, resolve_community

    try:
        # These commands have no --community: the config's [community] name picks it.
        return resolve_community(engine, settings.community.name, choose="set [community] name to one of them").id
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

    settings = load_config(args.config)
    if args.as_of and not args.preview:
        raise CommandError("--as-of only works with --preview: a digest is sent for the week that is due now", 2)
    _check_day(args.as_of)
    if not args.preview and not (settings.telegram.enabled or settings.discord.enabled):
        raise CommandError(
            "no platform is enabled to send the digest to; use --preview to print it, or enable [telegram] "
            "or [discord] in the config",
            EXIT_USAGE,
        )
    engine = existing_engine(settings)
    require_schema(engine)
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

    settings = load_config(args.config)
    if args.as_of and not args.dry_run:
        raise CommandError("--as-of only works with --dry-run: real nudges go out now", EXIT_USAGE)
    _check_day(args.as_of)
    engine = existing_engine(settings)
    require_schema(engine)
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

    settings = load_config(args.config)
    engine = existing_engine(settings)
    require_schema(engine)
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
