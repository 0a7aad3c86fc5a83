"""The composition root: the one place that builds and wires cohortbot.

Settings -> engine -> store and writer -> dispatcher -> adapters, started in that order on one asyncio loop and
stopped in reverse, so that on shutdown adapters stop delivering before the writer flushes what they delivered.

While it runs, ``serve`` supervises every long-running task (the writer's worker, the Telegram poller, the Discord
gateway connection): one that ends on its own means the bot would silently stop hearing something, so the app is
stopped in order and :class:`TaskDiedError` tells the command line to exit non-zero, for a service manager to
restart it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import Engine

from bot.clock import Clock, SystemClock
from bot.config import Secrets, Settings
from bot.core.commands import all_commands
from bot.core.dispatcher import Dispatcher
from bot.core.ports import Adapter, AdapterDeps, ConnectionStatus, LeaderDuties, PlatformActions, WebhookRoutes
from bot.leadership import LEADER_MESSAGE, Leadership
from bot.metrics import CONTENT_TYPE, Metrics
from bot.scheduler import Scheduler
from bot.schema import SchemaOutdatedError as SchemaOutdatedError  # re-exported: the console catches it
from bot.schema import check_schema
from storage.catalog import CourseRecord, sync_courses
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.leadership import LeaderLock
from storage.writer import EventWriter

if TYPE_CHECKING:
    from bot.core.replies import OutgoingMessage
    from bot.stripe_checkout import StripeCheckout
    from bot.web.server import WebServer

log = logging.getLogger(__name__)


class TaskDiedError(RuntimeError):
    """A long-running task ended while the app was running; the app has been stopped, the process must exit non-zero.

    Attributes:
        task_name: Which task ended (``Telegram polling``, ``Discord gateway``, ``event writer``).
    """

    def __init__(self, task_name: str, reason: str) -> None:
        super().__init__(f"the {task_name} task ended unexpectedly: {reason}")
        self.task_name = task_name


@runtime_checkable
class Supervised(Protocol):
    """A part with long-running tasks that must not end while the app runs (adapters and the writer)."""

    def supervised_tasks(self) -> Mapping[str, asyncio.Task[Any]]:
        """Each long-running task by a name for the log; empty before it started."""
        ...


def course_records(settings: Settings) -> list[CourseRecord]:
    """The storage view of the configured courses."""
    return [
        CourseRecord(c.id, c.title, price_stars=c.price_stars, price=c.price, currency=c.currency)
        for c in settings.courses
    ]


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
    signing_secret: str | None = None
    webhooks: WebhookRoutes | None = None
    web_server: WebServer | None = None
    stripe: StripeCheckout | None = None
    # The app's own registry (never prometheus_client's global one), served on /metrics.
    metrics: Metrics = field(default_factory=Metrics)
    metrics_token: str | None = None
    leader_lock: LeaderLock | None = None
    leadership: Leadership | None = None
    _started: list[Adapter] = field(default_factory=list)
    _scheduling: bool = False
    # Set when the set of supervised tasks changes (polling starts or stops with leadership), for run_until.
    _tasks_changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, *, schedule: bool = True) -> None:
        """Check the schema, register the community and catalog, start the writer, the adapters, the scheduler.

        On PostgreSQL (``leader_lock`` set) the scheduler and Telegram polling run only while this process holds
        the leader lock: the first try is made here, later ones every few seconds (see ``bot/leadership.py``).

        Args:
            schedule: Start the scheduled jobs (one-shot CLI commands that only send something pass False).
        """
        await asyncio.to_thread(check_schema, self.engine)
        community = self.settings.community
        self.community_id = await asyncio.to_thread(self.store.register_community, community.name, community.timezone)
        await asyncio.to_thread(sync_courses, self.engine, self.community_id, course_records(self.settings))
        self.dispatcher.bind(self.community_id)
        await self.writer.start()
        if self.settings.serves_web:
            # Before the adapters: a taken port stops the start before any platform is connected.
            await self._start_web(self.community_id)
        elect = schedule and self.leader_lock is not None
        for adapter in self.adapters:
            if elect and isinstance(adapter, LeaderDuties):
                adapter.defer_leader_duties()
            await adapter.start()
            self._started.append(adapter)
            log.info("%s adapter started", adapter.name)
        if elect and self.leader_lock is not None:
            self.leadership = Leadership(self.leader_lock, on_lead=self._lead, on_follow=self._follow)
            await self.leadership.start()
        elif schedule:
            # SQLite: one process per database (``cohortbot run`` holds the file lock), so it always leads.
            log.info("%s (one process: SQLite)", LEADER_MESSAGE)
            await self.scheduler.start()
            self._scheduling = True

    async def _lead(self) -> None:
        """This process took the leader lock: start the scheduled jobs and the adapters' leader duties."""
        # Every job runs on the leader only, ``refresh`` included: it records nudge outcomes (a write), and the
        # dashboards of followers read the same database, so nothing in a follower's memory needs refreshing.
        await self.scheduler.start()
        self._scheduling = True
        # One run at once: `cohortbot jobs` (the host of the last runs) shows which process took over, without
        # waiting up to [schedule] refresh_minutes for the first slot.
        self.scheduler.run_soon("refresh")
        for adapter in self._started:
            if isinstance(adapter, LeaderDuties):
                await adapter.lead()
        self._tasks_changed.set()

    async def _follow(self) -> None:
        """This process lost the leader lock: stop the jobs and the leader duties now (another process leads)."""
        self._scheduling = False
        try:
            await self.scheduler.stop()
        except Exception:  # the duties below must stop all the same
            log.exception("scheduler failed to stop cleanly")
        for adapter in self._started:
            if isinstance(adapter, LeaderDuties):
                try:
                    await adapter.follow()
                except Exception:
                    log.exception("%s adapter failed to hand its leader duties over", adapter.name)
        self._tasks_changed.set()

    async def _start_web(self, community_id: int) -> None:
        from bot.core.checkout import CheckoutDesk
        from bot.web.context import WebContext
        from bot.web.metrics import MetricsEndpoint
        from bot.web.server import WebServer
        from bot.web.webhooks import PaymentWebhooks

        if self.settings.dashboard.enabled and not self.signing_secret:
            log.warning("the dashboard is enabled but COHORTBOT_SECRET is not set: nobody can sign in to it")
        ctx = WebContext(
            settings=self.settings,
            engine=self.engine,
            clock=self.clock,
            community_id=community_id,
            signing_secret=self.signing_secret,
            writer=self.writer,
        )
        # Read at each request: the adapters start after the server (a payment before then grants nothing yet).
        actions = {a.platform.value: a for a in self.adapters if isinstance(a, PlatformActions)}
        payments = PaymentWebhooks(
            desk=CheckoutDesk(
                self.dispatcher,
                actions,
                self._notify,
                billing=self.stripe,
                # A card subscription that ended early: remove the member now, not at the job's next run.
                subscriptions_now=lambda: self.scheduler.run("subscriptions"),
            ),
            stripe=self.stripe,
            checkout_secret=self.signing_secret if self.settings.checkout.enabled else None,
        )
        server = WebServer(
            ctx,
            problems=self.health_problems,
            webhooks=self.webhooks,
            payments=payments,
            dashboard=self.settings.dashboard.enabled,
            metrics=MetricsEndpoint(self.metrics.render, CONTENT_TYPE, self.metrics_token),
        )
        await server.start()
        self.web_server = server
        if self.settings.dashboard.enabled:
            served = "dashboard"
        elif self.settings.stripe.enabled or self.settings.checkout.enabled:
            served = "payment webhooks"
        else:
            served = "web server (/healthz, /metrics)"
        log.info("%s at %s", served, server.url)

    async def _notify(self, message: OutgoingMessage) -> None:
        """Send a receipt or notice through the adapter of the message's platform (a stopped one sends nothing)."""
        for adapter in self._started:
            if isinstance(adapter, PlatformActions) and adapter.platform.value == message.platform:
                await adapter.send(message)
                return
        log.warning("no running %s adapter to send a checkout notice with", message.platform)

    def health_problems(self) -> list[str]:
        """What ``/healthz`` reports as not running (empty when all is well).

        The writer's worker, the scheduler, and the connection of every started platform adapter (the Telegram
        poller failing to reach the Bot API, the Discord gateway not connected).
        """
        problems: list[str] = []
        writer_tasks = self.writer.supervised_tasks()
        if not writer_tasks or any(task.done() for task in writer_tasks.values()):
            problems.append("the event writer is not running")
        if self._scheduling and not self.scheduler.running:
            problems.append("the scheduler is not running")
        for adapter in self.adapters:
            if not isinstance(adapter, ConnectionStatus):
                continue
            if adapter not in self._started:
                # Still connecting (the web server starts first), or stopped: not alive either way.
                problems.append(f"the {adapter.name} adapter is not running")
            elif (problem := adapter.connection_problem()) is not None:
                problems.append(problem)
        return problems

    def supervised_tasks(self) -> dict[str, asyncio.Task[Any]]:
        """Every long-running task of the started parts (the writer's worker, pollers, gateway connections)."""
        tasks: dict[str, asyncio.Task[Any]] = dict(self.writer.supervised_tasks())
        for adapter in self._started:
            if isinstance(adapter, Supervised):
                tasks.update(adapter.supervised_tasks())
        if self.leadership is not None:
            tasks.update(self.leadership.supervised_tasks())
        return tasks

    async def run_until(self, stop: asyncio.Event) -> TaskDiedError | None:
        """Wait until ``stop`` is set, or until a supervised task ends (which it should never do on its own).

        Returns:
            None when stopped as asked; otherwise what ended and why (already logged with its traceback).
        """
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(stop.wait(), name="cohortbot stop signal")
        try:
            while True:
                self._tasks_changed.clear()
                tasks = self.supervised_tasks()
                changed = loop.create_task(self._tasks_changed.wait(), name="cohortbot tasks changed")
                try:
                    done, _ = await asyncio.wait(
                        {stopping, changed, *tasks.values()}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    changed.cancel()
                if stopping in done:
                    return None
                # A task that ended because leadership moved (Telegram polling) is no longer supervised: no death.
                current = self.supervised_tasks()
                for name, task in tasks.items():
                    if task in done and current.get(name) is task:
                        return _task_died(name, task)
        finally:
            stopping.cancel()

    def require_community_id(self) -> int:
        """The registered community's id.

        Raises:
            RuntimeError: Before ``start``.
        """
        if self.community_id is None:
            raise RuntimeError("the app has not started")
        return self.community_id

    async def stop(self) -> None:
        """Stop the scheduler, the web server, then adapters (newest first), flush and stop the writer."""
        leadership, self.leadership = self.leadership, None
        if leadership is not None:
            await leadership.stop()  # no takeover attempt while stopping
            if leadership.leading:
                # Jobs and polling end before the lock is given up, so the next leader never overlaps them.
                await self._follow()
        if self._scheduling:
            self._scheduling = False
            try:
                await self.scheduler.stop()
            except Exception:  # must not keep queued events from being written
                log.exception("scheduler failed to stop cleanly")
        if leadership is not None:
            # Jobs have ended: a follower may take over now, without waiting for this process to exit.
            await leadership.release()
        if self.web_server is not None:
            server, self.web_server = self.web_server, None
            try:
                await server.stop()
            except Exception:  # must not keep queued events from being written
                log.exception("web server failed to stop cleanly")
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


def _task_died(name: str, task: asyncio.Task[Any]) -> TaskDiedError:
    if task.cancelled():
        reason = "it was cancelled"
        log.error("the %s task was cancelled while the bot was running; stopping so it can be restarted", name)
    elif (error := task.exception()) is not None:
        reason = f"{type(error).__name__}: {error}"
        log.error("the %s task failed: %s; stopping so it can be restarted", name, reason, exc_info=error)
    else:
        reason = "it returned"
        log.error("the %s task ended on its own; stopping so it can be restarted", name)
    return TaskDiedError(name, reason)


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
    metrics = Metrics()
    writer = EventWriter(store, observer=metrics)
    metrics.watch_queue(lambda: writer.pending)
    stripe_account: StripeCheckout | None = None
    if settings.stripe.enabled and secrets.stripe_api_key and secrets.stripe_webhook_secret:
        from bot.stripe_checkout import StripeCheckout

        stripe_account = StripeCheckout(settings, secrets.stripe_api_key, secrets.stripe_webhook_secret)
    elif settings.stripe.enabled:
        log.error("[stripe] enabled = true but its keys are not set: card payments are off")
    dispatcher = Dispatcher(
        all_commands(),
        settings=settings,
        engine=engine,
        writer=writer,
        clock=clock,
        signing_secret=secrets.signing_secret,
        checkout_sessions=stripe_account,
        telemetry=metrics,
    )
    # With the dashboard in-process, a webhook is served on its port rather than on a listener of its own.
    webhooks = WebhookRoutes() if settings.dashboard.enabled else None
    deps = AdapterDeps(
        settings=settings,
        secrets=secrets,
        writer=writer,
        dispatcher=dispatcher,
        clock=clock,
        engine=engine,
        webhooks=webhooks,
        telemetry=metrics,
    )
    built = list(adapters(deps)) if adapters else []
    dispatcher.alerts.attach(*built)
    scheduler = Scheduler(
        settings=settings,
        engine=engine,
        clock=clock,
        adapters=built,
        community_id=lambda: dispatcher.community_id,
        sleep=sleep or asyncio.sleep,
        alerts=dispatcher.alerts,
        telemetry=metrics,
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
        signing_secret=secrets.signing_secret,
        webhooks=webhooks,
        stripe=stripe_account,
        metrics=metrics,
        metrics_token=secrets.metrics_token,
        # Several processes may share a PostgreSQL database: one of them, holding this lock, runs the jobs.
        leader_lock=LeaderLock(engine, settings.community.name) if engine.dialect.name == "postgresql" else None,
    )


async def serve(app: App, stop: asyncio.Event | None = None, started: asyncio.Event | None = None) -> None:
    """Start the app, run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully.

    A signal during start (say while a platform is still unreachable and being retried) stops at once. A supervised
    task that ends on its own stops the app in the same order (adapters first, then the writer flushes) and raises.

    Args:
        app: The built app.
        stop: Set it to stop the app (signals set it too).
        started: Set once the app has started (for supervisors and tests).

    Raises:
        TaskDiedError: A long-running task ended while the app was running (logged with its traceback); the caller
            exits non-zero so that a service manager restarts the bot.
        AdapterStartError: A platform refused to start (a bad token); the message says what to fix.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    died: TaskDiedError | None = None
    try:
        if not await _start_unless_stopped(app, stop):
            log.info("stopped while starting")
            return
        if started is not None:
            started.set()
        log.info("cohortbot is running for %r; stop with Ctrl+C or SIGTERM", app.settings.community.name)
        died = await app.run_until(stop)
        log.info("shutting down")
    finally:
        await app.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)
    if died is not None:
        raise died


async def _start_unless_stopped(app: App, stop: asyncio.Event) -> bool:
    """Start the app; returns False when ``stop`` was set first (the half-started app is stopped by the caller)."""
    loop = asyncio.get_running_loop()
    starting = loop.create_task(app.start(), name="cohortbot start")
    stopping = loop.create_task(stop.wait(), name="cohortbot stop signal")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
    if starting.cancelled():
        return False
    starting.result()  # a start error (bad token, outdated schema) goes to the caller
    return True
