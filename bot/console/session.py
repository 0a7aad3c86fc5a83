"""``cohortbot console``: the bot in a terminal, against a real database (by default the demo's).

The app is the same one ``cohortbot run`` builds, with the console as its only adapter; the scheduler is built but
not started, because in a terminal the jobs run when asked (``:digest``, ``:nudges``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.app import SchemaOutdatedError, build_app
from bot.clock import Clock
from bot.config import CommunitySettings, Settings, load_settings
from bot.console.adapter import ConsoleAdapter, console_files_dir
from bot.core.ports import AdapterDeps
from bot.demo import DATABASE_NAME, MARKER_NAME, demo_settings
from storage.engine import database_error_line, make_engine
from storage.migrate import current_revision, head_revision
from storage.models import Community, JobRun, Message

DEMO_OUT = Path("cohortbot-demo")
"""Where ``cohortbot demo`` writes by default; without a config the console opens the database in it."""


class ConsoleError(Exception):
    """The console cannot start; the message says what to do instead."""


def console_settings(config_path: Path | None, *, demo_out: Path = DEMO_OUT) -> Settings:
    """The settings ``cohortbot console`` runs with.

    Args:
        config_path: The config file, when one was given (``--config``, ``$COHORTBOT_CONFIG`` or
            ``./cohortbot.toml``); None for the demo's database.
        demo_out: Where ``cohortbot demo`` wrote its files (default ``./cohortbot-demo``).

    Returns:
        The config's settings; or, without a config, the demo's settings for the database in ``demo_out``, with
        the community as it is stored there.

    Raises:
        ConfigError: The config file is invalid.
        ConsoleError: No config was given and there is no demo database.
    """
    if config_path is not None:
        return load_settings(config_path)
    database = demo_out / DATABASE_NAME
    if not database.is_file():
        raise ConsoleError(
            f"no config given and no demo database at {database}: run `cohortbot demo` first to make one, "
            "or pass --config PATH to use your own"
        )
    return demo_console_settings(database)


def demo_console_settings(database: Path) -> Settings:
    """The demo's settings (its courses, digest and nudges) for a database ``cohortbot demo`` wrote.

    The community's name and time zone are read from the database, so the console joins the community that is
    there even when the demo that wrote it was run with other settings.
    """
    settings = demo_settings(database)
    engine = make_engine(settings.storage.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Community.name, Community.timezone).order_by(Community.id)).all()
    except SQLAlchemyError:  # not a cohortbot database (yet): run_console says how to make one
        rows = []
    finally:
        engine.dispose()
    if not rows:
        return settings
    row = next((r for r in rows if r.name == settings.community.name), rows[0])
    return replace(settings, community=CommunitySettings(name=row.name, timezone=row.timezone))


class ContinuingClock:
    """Time that goes on from ``start`` at the wall clock's pace: the demo community lives in simulated time."""

    def __init__(self, start: dt.datetime, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        """Start at ``start`` (UTC-aware) now."""
        self.start = start.astimezone(dt.UTC)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> dt.datetime:
        """``start`` plus the wall time elapsed since the clock was made."""
        return self.start + dt.timedelta(seconds=self._monotonic() - self._origin)


def demo_clock(settings: Settings, engine: Engine) -> ContinuingClock | None:
    """For a database ``cohortbot demo`` wrote: a clock that goes on from where the simulation stopped.

    The demo plays months that are over; at the real date its community would look silent for months, so the
    console carries on from the simulation's last moment instead. None for any other database.
    """
    url = make_url(settings.storage.url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or not (Path(database).parent / MARKER_NAME).is_file():
        return None
    with engine.connect() as conn:
        moments = [
            conn.execute(select(func.max(JobRun.started_at))).scalar(),
            conn.execute(select(func.max(Message.created_at))).scalar(),
        ]
    found = [m for m in moments if m is not None]
    return ContinuingClock(max(found)) if found else None


def default_files_dir(settings: Settings) -> Path:
    """``console-files/`` next to the database, but beside a demo's folder: a demo run replaces that folder."""
    files = console_files_dir(settings)
    folder = files.parent
    if (folder / MARKER_NAME).is_file():
        return folder.parent / f"{folder.name}-console-files"
    return files


def _open_database(settings: Settings) -> Engine:
    """An engine on a database at the current schema (never creates a database file by looking at it).

    Raises:
        ConsoleError: The database is missing or not migrated, with the commands that fix it.
    """
    url = make_url(settings.storage.url)
    shown = url.render_as_string(hide_password=True)
    fix = "run `cohortbot demo` for a demo community, or `cohortbot db upgrade --config <your config>` for your own"
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not Path(database).is_file():
        raise ConsoleError(f"there is no database at {shown}: {fix}")
    engine = make_engine(settings.storage.url)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConsoleError(database_error_line(exc, settings.storage.url)) from exc
    if current != head_revision():
        engine.dispose()
        state = "has no cohortbot schema" if current is None else f"is at an older schema ({current})"
        raise ConsoleError(f"the database {shown} {state}: {fix}")
    return engine


def run_console(
    settings: Settings,
    *,
    stdin: TextIO,
    stdout: TextIO,
    admins: Sequence[str] = (),
    clock: Clock | None = None,
    files_dir: Path | None = None,
) -> int:
    """Run the console until the input ends or ``:quit``, then stop the app (everything typed is stored).

    Args:
        settings: The configuration (``console_settings`` makes it).
        stdin: Where lines are read.
        stdout: Where the banner, the answers, digests and nudges are printed.
        admins: Member names that may run admin commands (``owner`` always may).
        clock: The time source (tests pass a fake one); default: the system clock, or for the demo's database
            the simulation's time going on from where it stopped.
        files_dir: Where charts and data exports are written (default: ``console-files/`` next to the database).

    Returns:
        0.

    Raises:
        ConsoleError: The database is missing or not migrated.
    """
    engine = _open_database(settings)
    time_note = None
    if clock is None and (clock := demo_clock(settings, engine)) is not None:
        time_note = "the demo's simulated time, going on from where the demo stopped"
    files = files_dir or default_files_dir(settings)

    def console(deps: AdapterDeps) -> ConsoleAdapter:
        return ConsoleAdapter(deps, stdin=stdin, stdout=stdout, admins=admins, files_dir=files, time_note=time_note)

    try:
        asyncio.run(_session(settings, engine, clock=clock, console=console))
    except KeyboardInterrupt:  # Ctrl+C is a way to leave, like :quit; the session stopped cleanly before this
        with contextlib.suppress(OSError):
            stdout.write("\n")
    with contextlib.suppress(OSError):  # the output may be a pipe whose reader has gone (`| head`)
        stdout.write(f"bye: everything typed is stored in {make_url(settings.storage.url).render_as_string()}\n")
        stdout.flush()
    return 0


async def _no_pause(_seconds: float) -> None:
    """The nudge run paces messages for the platforms' spam limits; a terminal has none."""


async def _session(
    settings: Settings, engine: Engine, *, clock: Clock | None, console: Callable[[AdapterDeps], ConsoleAdapter]
) -> None:
    consoles: list[ConsoleAdapter] = []

    def adapters(deps: AdapterDeps) -> list[ConsoleAdapter]:
        consoles.append(console(deps))
        return consoles

    app = build_app(settings, adapters=adapters, clock=clock, engine=engine, sleep=_no_pause)
    terminal = consoles[0]
    terminal.attach_scheduler(app.scheduler)
    try:
        await app.start(schedule=False)
        await terminal.wait_closed()
    except SchemaOutdatedError as exc:  # checked before starting; only a concurrent downgrade gets here
        raise ConsoleError(str(exc)) from exc
    finally:
        await app.stop()
