"""``cohortbot demo``: half a year of a simulated community in under a minute, through the real bot.

The demo builds the real app (dispatcher, writer, scheduler) on a fresh SQLite database with a simulated adapter
(``bot.demo.adapter``) and a simulated clock, then walks virtual time: the community's activity in time order
and, in between, the real scheduler's jobs at the fire times of their real triggers (the weekly digest at its
configured local time, the daily nudge run, the refresh). At the end it prints what the owner would have read: the
last weekly digest, a member's ``/stats``, the admin ``/report``, where the charts and the HTML report are, and
how to open the dashboard on the demo's database (with the configuration file it writes next to it).

Nothing printed depends on the wall clock except the one ``Wall time`` line, so the same seed prints the same
numbers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import time as walltime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, func, select

from analytics.formatting import plural
from analytics.render import write_report
from bot.app import App, build_app
from bot.config import Settings, parse_settings
from bot.core.markup import render_plain
from bot.core.replies import Reply
from bot.demo.adapter import SimulatedAdapter
from bot.demo.community import CourseLaunch, SimulatedCommunity, SimulationPlan
from bot.reporting import ReportRequest, build_community_report
from bot.scheduler import JOBS, digest_slot
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.models import Digest, Member, Nudge, Purchase, Refund

log = logging.getLogger(__name__)

COMMUNITY = "PyCraft (demo)"
TIMEZONE = "Europe/Berlin"
START = date(2025, 1, 6)  # a Monday: simulated weeks are ISO weeks (and the run crosses a DST change)
DEFAULT_OUT = "cohortbot-demo"
DATABASE_NAME = "cohortbot-demo.db"
CONFIG_NAME = "cohortbot.toml"  # the demo's settings, under the name every command looks for
MARKER_NAME = "cohortbot-demo.json"  # says "this directory is a demo's": a re-run may replace what is listed in it
REPORT_DIR = "report"
# The refresh job fires every few minutes; only its latest run before a digest matters (it records nudge outcomes
# from daily rollups), so the demo coalesces its runs to one per simulated interval, as APScheduler does after a stall.
REFRESH_COALESCE = timedelta(days=1)


class DemoError(Exception):
    """The demo cannot run (for example ``--out`` holds files that are not a previous demo's)."""


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run produced.

    Attributes:
        out: The output directory.
        database: The SQLite database with the simulated community.
        config: The configuration file naming that database and the demo community (for ``--config``).
        html_report: The stand-alone HTML report.
        charts: Every PNG written (report charts, the digest's chart, the ``/report`` chart).
        digest_week: The ISO week of the last digest the owner received.
        members: Members who joined.
        left: Members who left.
        messages: Messages posted.
        reactions: Reactions added.
        purchases: Courses bought.
        refunds: Purchases refunded.
        opt_outs: Members who turned nudges off (with ``/nudges off``).
        nudges_sent: Nudges the scheduler sent.
        nudges_held_out: Inactive members the scheduler held out (the comparison group).
        digests: Weekly digests claimed.
        output: Everything printed except the wall time.
        seconds: Wall time of the run.
    """

    out: Path
    database: Path
    config: Path
    html_report: Path
    charts: tuple[Path, ...]
    digest_week: str | None
    members: int
    left: int
    messages: int
    reactions: int
    purchases: int
    refunds: int
    opt_outs: int
    nudges_sent: int
    nudges_held_out: int
    digests: int
    output: str
    seconds: float


class SimulatedClock:
    """The demo's clock: set to each simulated instant; ``sleep`` moves it on instead of waiting."""

    def __init__(self, start: datetime) -> None:
        """Start at ``start`` (UTC-aware)."""
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The simulated instant."""
        return self._now

    def advance_to(self, moment: datetime) -> None:
        """Move to ``moment``; never backwards (a job that slept past an event's time keeps its later time)."""
        moment = moment.astimezone(UTC)
        if moment > self._now:
            self._now = moment

    async def sleep(self, seconds: float) -> None:
        """Let simulated time pass (the nudge run's pause between messages)."""
        self._now += timedelta(seconds=seconds)


def demo_settings(database: Path) -> Settings:
    """The demo community's settings: digest on Monday 09:00, nudges on with their defaults, three courses.

    Args:
        database: Where the SQLite database is (or will be).
    """
    return parse_settings(_demo_config(database), source="<demo>")


def _demo_config(database: Path) -> dict[str, Any]:
    return {
        "community": {"name": COMMUNITY, "timezone": TIMEZONE},
        "storage": {"url": f"sqlite:///{database.resolve().as_posix()}"},
        "digest": {"enabled": True, "weekday": "monday", "time": "09:00"},
        "nudges": {"enabled": True},
        "courses": [
            {
                "id": "py-async",
                "title": "Async Python in Practice",
                "description": "asyncio from the event loop up, with real projects",
                "price": 49,
                "currency": "EUR",
                "checkout_url": "https://example.com/pycraft/py-async",
            },
            {
                "id": "rust-for-py",
                "title": "Rust for Pythonistas",
                "description": "Write your hot loops in Rust and call them from Python",
                "price": 79,
                "currency": "EUR",
                "checkout_url": "https://example.com/pycraft/rust-for-py",
            },
            {
                "id": "testing",
                "title": "Testing That Pays Off",
                "description": "pytest, property tests and CI that catches real bugs",
                "price": 39,
                "currency": "EUR",
                "checkout_url": "https://example.com/pycraft/testing",
            },
        ],
    }


def write_demo_config(path: Path, database: Path) -> Path:
    """Write the demo's settings as a configuration file (TOML), so that CLI commands can open its database.

    Args:
        path: The file to write.
        database: The demo's SQLite database.

    Returns:
        ``path``.
    """
    header = (
        "# Written by `cohortbot demo`: the simulated community's settings and its database.\n"
        "# Use it with --config, e.g. cohortbot dashboard serve --config " + shlex.quote(str(path.resolve())) + "\n"
    )
    path.write_text(header + _toml(_demo_config(database)), encoding="utf-8")
    return path


def _toml(document: Mapping[str, Any]) -> str:
    """A TOML document of tables (and arrays of tables) of strings, numbers and booleans: all the demo needs."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string (escapes included) is a TOML basic string
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def table(header: str, items: Mapping[str, Any]) -> str:
        return header + "\n" + "".join(f"{key} = {value(v)}\n" for key, v in items.items()) + "\n"

    out = []
    for name, content in document.items():
        if isinstance(content, list):
            out += [table(f"[[{name}]]", item) for item in content]
        else:
            out.append(table(f"[{name}]", content))
    return "".join(out)


def demo_plan(settings: Settings, *, members: int, weeks: int, seed: int) -> SimulationPlan:
    """The simulation for the demo settings: courses launch a fifth, half and four fifths into the run."""
    launches = tuple(
        CourseLaunch(course, launch_week=min(weeks - 1, int(weeks * share)))
        for course, share in zip(settings.courses, (0.2, 0.5, 0.8), strict=False)
    )
    return SimulationPlan(
        community=settings.community.name,
        timezone=settings.community.tz,
        start=START,
        members=members,
        weeks=weeks,
        seed=seed,
        launches=launches,
    )


def run_demo(
    *,
    members: int = 2000,
    weeks: int = 26,
    seed: int = 1,
    out: Path = Path(DEFAULT_OUT),
    stream: TextIO,
) -> DemoResult:
    """Simulate a community through the real bot and print what its owner would see.

    Args:
        members: Members who join over the simulated period.
        weeks: Simulated weeks (one digest per week).
        seed: Same seed, same community and the same numbers.
        out: Directory for the database, the HTML report and the charts (created; a previous demo's files in it
            are replaced).
        stream: Where progress and the results are printed.

    Returns:
        Paths and key figures.

    Raises:
        DemoError: Bad sizes, or ``out`` holds files that are not a previous demo's.
    """
    if members < 1 or weeks < 1:
        raise DemoError(f"the demo needs at least one member and one week (got {members} members, {weeks} weeks)")
    started = walltime.perf_counter()
    database = _prepare(out)
    write_demo_config(out / CONFIG_NAME, database)
    settings = demo_settings(database)
    printer = _Printer(stream)
    result = asyncio.run(_run(settings, demo_plan(settings, members=members, weeks=weeks, seed=seed), out, printer))
    seconds = walltime.perf_counter() - started
    # Kept on its own line, so that comparing two runs' output can drop it.
    stream.write(f"Wall time: {seconds:.1f} s\n")
    stream.flush()
    return DemoResult(**result, output=printer.text(), seconds=seconds)


# --- the output directory ------------------------------------------------------------------------------------------


def _prepare(out: Path) -> Path:
    """Make ``out`` ready for a fresh run: refuse foreign files, remove a previous demo's."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out}: exists and is not a directory")
    if out.exists():
        entries = sorted(p for p in out.rglob("*") if p.is_file())
        marker = out / MARKER_NAME
        if entries and not marker.is_file():
            raise DemoError(
                f"--out {out}: the directory is not empty and holds no previous demo ({len(entries)} files, e.g. "
                f"{entries[0].relative_to(out)}); choose another directory or empty it"
            )
        if entries:
            known = _demo_files(out, marker)
            foreign = [p for p in entries if p.resolve() not in known]
            if foreign:
                shown = ", ".join(str(p.relative_to(out)) for p in foreign[:3])
                raise DemoError(
                    f"--out {out}: holds files the demo did not write ({shown}); move them or choose another directory"
                )
            for path in entries:
                path.unlink()
            for directory in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
                directory.rmdir()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_NAME).write_text(json.dumps({"cohortbot-demo": True, "files": []}), encoding="utf-8")
    return out / DATABASE_NAME


def _demo_files(out: Path, marker: Path) -> set[Path]:
    """The files a previous demo listed in its marker, its database (with SQLite's side files) and the marker."""
    try:
        listed = json.loads(marker.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError) as exc:
        raise DemoError(f"--out {out}: {marker.name} is not a demo marker ({exc}); choose another directory") from exc
    names = [str(name) for name in listed] + [MARKER_NAME, CONFIG_NAME]
    names += [DATABASE_NAME + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    return {(out / name).resolve() for name in names}


def _record_files(out: Path, paths: list[Path]) -> None:
    files = sorted(str(p.resolve().relative_to(out.resolve()).as_posix()) for p in paths)
    (out / MARKER_NAME).write_text(json.dumps({"cohortbot-demo": True, "files": files}, indent=2), encoding="utf-8")


# --- printing --------------------------------------------------------------------------------------------------------


class _Printer:
    """Writes to the stream and keeps a copy (``DemoResult.output``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        self._lines.append(line)
        self.stream.write(line + "\n")
        self.stream.flush()

    def block(self, title: str, body: str) -> None:
        self()
        self(f"== {title} ==")
        for line in body.splitlines():
            self(f"   {line}" if line else "")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


# --- the run ---------------------------------------------------------------------------------------------------------


async def _run(settings: Settings, plan: SimulationPlan, out: Path, say: _Printer) -> dict[str, Any]:
    engine = make_engine(settings.storage.url)
    await asyncio.to_thread(upgrade, engine)
    community = SimulatedCommunity(plan)
    start = community.day_start(0)
    clock = SimulatedClock(start)
    adapters: list[SimulatedAdapter] = []

    def simulated(deps: Any) -> list[SimulatedAdapter]:
        adapters.append(SimulatedAdapter(deps, community))
        return adapters

    # The nudge run pauses between messages to stay under spam limits: in the demo that pause is simulated time.
    app = build_app(settings, clock=clock, adapters=simulated, engine=engine, sleep=clock.sleep)
    adapter = adapters[0]
    say(
        f"cohortbot demo: {plural(plan.members, 'member')} of {settings.community.name} over "
        f"{plural(plan.weeks, 'week')} "
        f"(seed {plan.seed}), from {plan.start:%d %b %Y}, time zone {settings.community.timezone}"
    )
    say(f"Database: {out / DATABASE_NAME}")
    await app.start(schedule=False)
    try:
        last_monday = plan.start + timedelta(weeks=plan.weeks - 1)
        end = digest_slot(last_monday, settings)  # the moment the last simulated week's digest is due
        await _play(app, adapter, community, clock, end, say)
        clock.advance_to(end + timedelta(minutes=5))
        await app.writer.flush()
        files = await _finish(app, adapter, community, out, settings, plan, say)
        figures = await asyncio.to_thread(_figures, app.engine, app.require_community_id())
    finally:
        await app.stop()
    counts = community.counts()
    _record_files(out, [*files["charts"], files["html"], *files["lists"]])
    return {
        "out": out,
        "database": out / DATABASE_NAME,
        "config": out / CONFIG_NAME,
        "html_report": files["html"],
        "charts": tuple(files["charts"]),
        "digest_week": files["digest_week"],
        "members": counts.joined,
        "left": counts.left,
        "messages": counts.messages,
        "reactions": counts.reactions,
        "purchases": figures["purchases"],
        "refunds": figures["refunds"],
        "opt_outs": figures["opt_outs"],
        "nudges_sent": figures["nudged"],
        "nudges_held_out": figures["holdout"],
        "digests": figures["digests"],
    }


def _timeline(app: App, start: datetime, end: datetime) -> Iterator[tuple[datetime, str]]:
    """The scheduler's jobs at the fire times of their real triggers, in time order, up to ``end``."""
    triggers = app.scheduler.triggers()
    order = {name: JOBS.index(name) if name in JOBS else len(JOBS) for name in triggers}
    upcoming: dict[str, datetime] = {}
    for name, trigger in triggers.items():
        first = trigger.get_next_fire_time(None, start)
        if name == "digest":
            # The first slot in the run is for the week before it (nothing happened then): start a week later.
            first = trigger.get_next_fire_time(None, start + timedelta(days=7))
        if first is not None:
            upcoming[name] = first
    while upcoming:
        name = min(upcoming, key=lambda n: (upcoming[n], order[n]))
        fire = upcoming[name]
        if fire > end:
            return
        yield fire, name
        # Cron jobs fire at every slot; the refresh interval is coalesced (see REFRESH_COALESCE).
        after = fire + (REFRESH_COALESCE if name == "refresh" else timedelta(seconds=1))
        following = triggers[name].get_next_fire_time(None, after)
        if following is None:
            del upcoming[name]
        else:
            upcoming[name] = following


async def _play(
    app: App,
    adapter: SimulatedAdapter,
    community: SimulatedCommunity,
    clock: SimulatedClock,
    end: datetime,
    say: _Printer,
) -> None:
    """Deliver the community's actions and run the jobs, interleaved in virtual time, with a line per week."""
    plan = community.plan
    jobs = _timeline(app, community.day_start(0), end)
    job = next(jobs, None)
    week_marks = [community.day_start(7 * week) for week in range(1, plan.weeks + 1)]
    while True:
        at = community.peek()
        if at is not None and at >= end:
            at = None
        mark = week_marks[0] if week_marks else None
        # Week marks first, then jobs, then activity at the same instant: a job sees what happened before it.
        candidates = [t for t in (mark, job[0] if job else None, at) if t is not None]
        if not candidates:
            break
        moment = min(candidates)
        if mark is not None and mark == moment:
            week_marks.pop(0)
            await app.writer.flush()
            _progress(say, plan.weeks - len(week_marks), plan.weeks, community, adapter)
        elif job is not None and job[0] == moment:
            await app.writer.flush()
            clock.advance_to(job[0])
            result = await app.scheduler.run(job[1])
            if result.outcome == "failed":
                say(f"   job {job[1]} failed: {result.detail}")
            job = next(jobs, None)
        else:
            clock.advance_to(moment)
            await adapter.deliver(community.pop())
    await app.writer.flush()


def _progress(say: _Printer, week: int, weeks: int, community: SimulatedCommunity, adapter: SimulatedAdapter) -> None:
    c = community.counts()
    members = c.joined - c.left
    say(
        f"week {week:>{len(str(weeks))}}/{weeks}  members {members:>5,}  messages {c.messages:>7,}  "
        f"reactions {c.reactions:>7,}  "
        f"sales {c.purchases:>4,} ({c.refunds} refunded)  nudges sent {len(adapter.nudges):>4,}  "
        f"digests {len(adapter.owner_inbox):>2}"
    )


async def _finish(
    app: App,
    adapter: SimulatedAdapter,
    community: SimulatedCommunity,
    out: Path,
    settings: Settings,
    plan: SimulationPlan,
    say: _Printer,
) -> dict[str, Any]:
    """Print the last digest, a ``/stats`` and a ``/report``; write the HTML report and the charts."""
    charts: list[Path] = []
    digest_week: str | None = None
    if adapter.owner_inbox:
        digest = adapter.owner_inbox[-1].reply
        say.block("The last weekly digest, as the owner read it", render_plain(digest.text))
        charts += _save(out, digest)
        digest_week = _week_of(charts[-1].name) if charts else None
    else:
        say.block("The last weekly digest", "No digest was sent (the simulation was shorter than a week).")

    member = community.most_active()
    stats = await adapter.command(member, "stats")
    say.block(f"/stats, as {member.display_name} (one of the most active members) sees it", render_plain(stats.text))

    owner = community.owner.ref
    report = await adapter.command(owner, "report", is_admin=True)
    say.block(f"/report, as {owner.display_name} (an admin) sees it", render_plain(report.text))
    charts += _save(out, report)

    last_sunday = plan.start + timedelta(weeks=plan.weeks, days=-1)
    request = ReportRequest(settings.community.name, as_of=last_sunday, weeks=plan.weeks)
    full, _ = await asyncio.to_thread(build_community_report, app.engine, request, now=app.clock.now())
    written = await asyncio.to_thread(write_report, full, out / REPORT_DIR, "html")
    html = written[0]
    charts += [p for p in written[1:] if p.suffix == ".png"]  # the CSV lists beside the page are no charts

    c = community.counts()
    say.block(
        "What happened",
        "\n".join(
            [
                f"Members: {c.joined:,} joined, {c.left:,} left",
                f"Activity: {plural(c.messages, 'message')}, {plural(c.reactions, 'reaction')}",
                f"Sales: {plural(c.purchases, 'course')} bought, {c.refunds:,} refunded",
                f"Nudges: {len(adapter.nudges):,} sent, {c.nudge_comebacks:,} of those members came back; "
                f"{plural(c.opt_outs, 'member')} turned nudges off",
                f"Digests: {len(adapter.owner_inbox)} received by the owner",
            ]
        ),
    )
    say.block(
        "Files",
        "\n".join(
            [
                f"HTML report: {html}",
                "Charts: " + ", ".join(str(p) for p in charts),
                f"Database: {out / DATABASE_NAME}",
                f"Configuration: {out / CONFIG_NAME}",
                _console_hint(out, settings),
            ]
        ),
    )
    say.block("Open the dashboard on this database", _dashboard_hint(out))
    lists = [p for p in written[1:] if p.suffix == ".csv"]  # the full member and channel lists beside the page
    return {"charts": charts, "html": html, "lists": lists, "digest_week": digest_week}


def _console_hint(out: Path, settings: Settings) -> str:
    if out.resolve() == Path(DEFAULT_OUT).resolve():
        return "Talk to the bot about this community: cohortbot console (it opens this database)"
    return (
        "Talk to the bot about this community: cohortbot console --config "
        f"{shlex.quote(str((out / CONFIG_NAME).resolve()))}"
    )


def _dashboard_hint(out: Path) -> str:
    config = shlex.quote(str((out / CONFIG_NAME).resolve()))
    return "\n".join(
        [
            "Login links are signed with COHORTBOT_SECRET (set it once; the server and the link need the same one):",
            "  export COHORTBOT_SECRET=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\"",
            "Serve the dashboard on http://127.0.0.1:8787 (in the background, or in a second terminal with the same "
            "COHORTBOT_SECRET):",
            f"  cohortbot dashboard serve --config {config} &",
            "Print a one-time login link (valid 10 minutes) and open it in your browser:",
            f"  cohortbot dashboard link --config {config}",
            "More in docs/dashboard.md.",
        ]
    )


def _save(out: Path, reply: Reply) -> list[Path]:
    paths = []
    for attachment in reply.attachments:
        if attachment.mime_type == "image/png":
            path = out / attachment.filename
            path.write_bytes(attachment.data)
            paths.append(path)
    return paths


def _week_of(filename: str) -> str | None:
    # digest-2025-W26-activity.png
    parts = filename.split("-")
    return f"{parts[1]}-{parts[2]}" if len(parts) >= 3 and filename.startswith("digest-") else None


def _figures(engine: Engine, community_id: int) -> dict[str, int]:
    """Key figures as stored (the database, not the simulator, is the source of truth)."""
    with engine.connect() as conn:

        def count(stmt: Any) -> int:
            return int(conn.execute(stmt).scalar() or 0)

        return {
            "purchases": count(select(func.count()).select_from(Purchase).where(Purchase.community_id == community_id)),
            "refunds": count(
                select(func.count())
                .select_from(Refund)
                .join(Purchase, Purchase.id == Refund.purchase_id)
                .where(Purchase.community_id == community_id)
            ),
            "opt_outs": count(
                select(func.count()).where(Member.community_id == community_id, Member.nudges_opt_out.is_(True))
            ),
            "nudged": count(
                select(func.count()).where(
                    Nudge.community_id == community_id, Nudge.group == "nudged", Nudge.sent_at.is_not(None)
                )
            ),
            "holdout": count(select(func.count()).where(Nudge.community_id == community_id, Nudge.group == "holdout")),
            "digests": count(select(func.count()).where(Digest.community_id == community_id)),
        }
