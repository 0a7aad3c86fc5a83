"""The composition root: the one place that builds and wires cohortbot.

Settings -> engine -> store and writer -> dispatcher -> adapters, started in that order on one asyncio loop and
stopped in reverse, so that on shutdown adapters stop delivering before the writer flushes what they delivered.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from bot.adapters.base import Adapter, AdapterDeps
from bot.clock import Clock, SystemClock
from bot.config import Secrets, Settings
from bot.core.commands import all_commands
from bot.core.dispatcher import Dispatcher
from bot.scheduler import Scheduler
from storage.catalog import CourseRecord, sync_courses
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import current_revision, head_revision
from storage.writer import EventWriter

log = logging.getLogger(__name__)


class SchemaOutdatedError(RuntimeError):
    """The database is not at the schema revision this version of cohortbot needs."""


def course_records(settings: Settings) -> list[CourseRecord]:
    """The storage view of the configured courses."""
    return [
        CourseRecord(c.id, c.title, price_stars=c.price_stars, price=c.price, currency=c.currency)
        for c in settings.courses
    ]


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database that was never migrated or is behind.

    Raises:
        SchemaOutdatedError: With the command that fixes it.
    """
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no cohortbot schema" if current is None else f"is at schema revision {current}"
        raise SchemaOutdatedError(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}; this version needs "
            f"{head}: run `cohortbot db upgrade --config <your config>` first"
        )


@dataclass
class App:
    """A built cohortbot: everything wired, nothing running until ``start``."""

    settings: Settings
    engine: Engine
    store: IngestStore
    writer: EventWriter
    dispatcher: Dispatcher
    clock: Clock
    scheduler: Scheduler
    adapters: list[Adapter] = field(default_factory=list)
    community_id: int | None = None
    _started: list[Adapter] = field(default_factory=list)
    _scheduling: bool = False

    async def start(self, *, schedule: bool = True) -> None:
        """Check the schema, register the community and catalog, start the writer, the adapters, the scheduler.

        Args:
            schedule: Start the scheduled jobs (one-shot CLI commands that only send something pass False).
        """
        await asyncio.to_thread(check_schema, self.engine)
        community = self.settings.community
        self.community_id = await asyncio.to_thread(self.store.register_community, community.name, community.timezone)
        await asyncio.to_thread(sync_courses, self.engine, self.community_id, course_records(self.settings))
        self.dispatcher.bind(self.community_id)
        await self.writer.start()
        for adapter in self.adapters:
            await adapter.start()
            self._started.append(adapter)
            log.info("%s adapter started", adapter.name)
        if schedule:
            await self.scheduler.start()
            self._scheduling = True

    def require_community_id(self) -> int:
        """The registered community's id.

        Raises:
            RuntimeError: Before ``start``.
        """
        if self.community_id is None:
            raise RuntimeError("the app has not started")
        return self.community_id

    async def stop(self) -> None:
        """Stop the scheduler, then adapters (newest first), flush and stop the writer, release the database."""
        if self._scheduling:
            self._scheduling = False
            try:
                await self.scheduler.stop()
            except Exception:  # must not keep queued events from being written
                log.exception("scheduler failed to stop cleanly")
        while self._started:
            adapter = self._started.pop()
            try:
                await adapter.stop()
            except Exception:  # one adapter failing to stop must not keep queued events from being written
                log.exception("%s adapter failed to stop cleanly", adapter.name)
        pending = self.writer.pending
        await self.writer.stop()
        log.info("event writer stopped; %d queued events flushed", pending)
        self.engine.dispose()


AdapterFactory = Callable[[AdapterDeps], Sequence[Adapter]]


def build_app(
    settings: Settings,
    *,
    secrets: Secrets | None = None,
    clock: Clock | None = None,
    adapters: AdapterFactory | None = None,
    engine: Engine | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> App:
    """Build the application from settings.

    Args:
        settings: Parsed configuration.
        secrets: Tokens and the signing secret (from the environment); none by default.
        clock: Time source (tests inject a fake one).
        adapters: Builds the platform adapters from the wired parts (``bot.adapters.build_adapters`` builds the
            enabled ones); none by default.
        engine: An existing engine (tests); built from ``[storage] url`` otherwise.
        sleep: How the nudge run waits between messages (the demo's simulated clock advances instead).

    Returns:
        The wired, not yet started, app.
    """
    secrets = secrets or Secrets()
    clock = clock or SystemClock()
    engine = engine or make_engine(settings.storage.url)
    store = IngestStore(engine, store_text=settings.storage.store_text)
    writer = EventWriter(store)
    dispatcher = Dispatcher(
        all_commands(),
        settings=settings,
        engine=engine,
        writer=writer,
        clock=clock,
        signing_secret=secrets.signing_secret,
    )
    deps = AdapterDeps(
        settings=settings, secrets=secrets, writer=writer, dispatcher=dispatcher, clock=clock, engine=engine
    )
    built = list(adapters(deps)) if adapters else []
    scheduler = Scheduler(
        settings=settings,
        engine=engine,
        clock=clock,
        adapters=built,
        community_id=lambda: dispatcher.community_id,
        sleep=sleep or asyncio.sleep,
    )
    return App(
        settings=settings,
        engine=engine,
        store=store,
        writer=writer,
        dispatcher=dispatcher,
        clock=clock,
        scheduler=scheduler,
        adapters=built,
    )


async def serve(app: App, stop: asyncio.Event | None = None, started: asyncio.Event | None = None) -> None:
    """Start the app, run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully.

    Args:
        app: The built app.
        stop: Set it to stop the app (signals set it too).
        started: Set once the app has started (for supervisors and tests).
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        if started is not None:
            started.set()
        log.info("cohortbot is running for %r; stop with Ctrl+C or SIGTERM", app.settings.community.name)
        await stop.wait()
        log.info("shutting down")
    finally:
        await app.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)
