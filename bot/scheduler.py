"""The scheduler: weekly digest, daily nudges, daily access reconciliation and a frequent refresh.

APScheduler's ``AsyncIOScheduler`` fires the jobs on the bot's own loop at times computed in the community's
time zone. The jobs themselves are plain methods that read the injected clock, so tests call them directly with
a clock they control, and a restart or a second process is harmless: every run is recorded in ``job_runs`` and a
digest week is claimed in the database before it is sent (see ``storage.digests.claim_digest``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from analytics.formatting import plural
from bot.clock import Clock
from bot.config import Settings
from bot.core.alerts import SaleAlerts
from bot.core.digest import build_digest
from bot.core.markup import join, render_plain, rich
from bot.core.nudges import OUTCOME_WINDOW_DAYS, in_quiet_hours, plan_nudges, run_nudges
from bot.core.ports import AccessReconciler, Adapter
from bot.core.question_pings import run_question_pings
from bot.core.reconcile import reconcile_access
from bot.core.replies import OutgoingMessage, Reply
from bot.core.subscriptions import run_subscriptions
from bot.core.surveys import send_survey_dms
from bot.core.telemetry import NoTelemetry, Telemetry
from storage import digests, job_runs, nudge_log

log = logging.getLogger(__name__)

JOBS = ("refresh", "digest", "nudges", "reconcile", "subscriptions", "questions", "surveys")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LATE_AFTER = timedelta(hours=1)  # a digest sent later than this after its slot says so


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job run ended: ``ok``, ``skipped`` or ``failed``, with one line on what it did."""

    outcome: str
    detail: str


def digest_slot(week_monday: date, settings: Settings) -> datetime:
    """When the digest of the ISO week starting ``week_monday`` is due: the configured weekday and time after it."""
    cfg = settings.digest
    day = week_monday + timedelta(days=7 + WEEKDAYS.index(cfg.weekday))
    return datetime.combine(day, cfg.time, tzinfo=settings.community.tz)


def due_digest_week(now: datetime, settings: Settings) -> date:
    """The Monday of the newest week whose digest slot has passed at ``now``."""
    today = now.astimezone(settings.community.tz).date()
    monday = today - timedelta(days=today.weekday()) - timedelta(days=7)
    while digest_slot(monday, settings) > now:
        monday -= timedelta(days=7)
    return monday


class Scheduler:
    """Runs the background jobs for one community through the enabled adapters."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        adapters: Sequence[Adapter],
        community_id: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        host: str | None = None,
        alerts: SaleAlerts | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """Create the scheduler (nothing runs until ``start``).

        Args:
            settings: The configuration.
            engine: The database.
            clock: The time source every job reads.
            adapters: Where digests and nudges are delivered.
            community_id: Returns the registered community's id (known once the app started).
            sleep: How the nudge run waits between messages (tests pass a fake).
            host: Recorded with each job run and digest claim (default: host name and process id).
            alerts: The owners' sale alerts (the dispatcher's), told when a subscription's access ends.
            telemetry: Where job runs and the DMs they send are counted (``/metrics``); nothing by default.
        """
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.adapters = {adapter.name: adapter for adapter in adapters}
        self._community_id = community_id
        self.sleep = sleep
        self.host = host or f"{socket.gethostname()}:{os.getpid()}"
        self.alerts = alerts
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self._aps: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------------------------

    def triggers(self) -> dict[str, CronTrigger | IntervalTrigger]:
        """Each enabled job's trigger, in the community's time zone."""
        tz = self.settings.community.tz
        found: dict[str, CronTrigger | IntervalTrigger] = {
            "refresh": IntervalTrigger(
                minutes=self.settings.schedule.refresh_minutes,
                start_date=self.clock.now() + timedelta(minutes=self.settings.schedule.refresh_minutes),
                timezone=tz,
            ),
        }
        if self.settings.digest.enabled:
            at = self.settings.digest.time
            found["digest"] = CronTrigger(
                day_of_week=self.settings.digest.weekday[:3], hour=at.hour, minute=at.minute, timezone=tz
            )
        if self.settings.nudges.enabled:
            at = self.settings.nudges.run_time
            found["nudges"] = CronTrigger(hour=at.hour, minute=at.minute, timezone=tz)
        if self._controls_access():
            at = self.settings.schedule.reconcile_time
            found["reconcile"] = CronTrigger(hour=at.hour, minute=at.minute, timezone=tz)
        if any(course.billing == "monthly" for course in self.settings.courses):
            # Access ends to the minute a period runs out; checked as often as the refresh runs.
            found["subscriptions"] = IntervalTrigger(
                minutes=self.settings.schedule.refresh_minutes,
                start_date=self.clock.now() + timedelta(minutes=1),
                timezone=tz,
            )
        if self.settings.help.ping_role is not None or self.settings.help.ping_chat is not None:
            found["questions"] = IntervalTrigger(
                minutes=self.settings.schedule.refresh_minutes,
                start_date=self.clock.now() + timedelta(minutes=2),
                timezone=tz,
            )
        # Survey DMs queued by /survey nps <course>, and the after-purchase question ([surveys] after_purchase_days).
        found["surveys"] = IntervalTrigger(
            minutes=self.settings.schedule.refresh_minutes,
            start_date=self.clock.now() + timedelta(minutes=2),
            timezone=tz,
        )
        return found

    def _controls_access(self) -> bool:
        """Some course gives a role or chat on a platform that is enabled (or connected)."""
        platforms = set(self.adapters)
        platforms |= {"telegram"} if self.settings.telegram.enabled else set()
        platforms |= {"discord"} if self.settings.discord.enabled else set()
        return any(
            ("telegram" in platforms and c.telegram_chat_id is not None)
            or ("discord" in platforms and c.discord_role_id is not None)
            for c in self.settings.courses
        )

    def next_runs(self, now: datetime) -> dict[str, datetime | None]:
        """When each enabled job fires next after ``now``."""
        return {name: trigger.get_next_fire_time(None, now) for name, trigger in self.triggers().items()}

    async def start(self) -> None:
        """Start firing jobs; send a digest that was missed while the bot was down (once, marked late).

        Also after a ``stop``: a process that lost the leader lock starts again when it leads again.
        """
        self._stopping = False
        if self.settings.digest.enabled:
            # Before the first refresh is recorded, so that a first start never counts as "was running".
            self._spawn(self.catch_up())
        aps = AsyncIOScheduler(timezone=self.settings.community.tz)
        for name, trigger in self.triggers().items():
            # coalesce: after a stall, one run instead of a burst; misfire_grace_time: a run a few minutes late
            # (a busy loop) still happens, a digest missed for longer is caught up by catch_up() instead.
            aps.add_job(self.run, trigger, args=[name], id=name, coalesce=True, misfire_grace_time=300)
        aps.start()
        self._aps = aps

    @property
    def running(self) -> bool:
        """True while jobs are being fired (between ``start`` and ``stop``)."""
        return self._aps is not None and bool(self._aps.running)

    async def stop(self) -> None:
        """Stop firing jobs and wait for the running ones, each recorded as it ended.

        A digest half sent is finished; a nudge run ends after the message in hand (its pacing would otherwise
        hold the shutdown for minutes).
        """
        self._stopping = True
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        running = self._tasks | self._running
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def run_soon(self, name: str) -> None:
        """Run one job now in the background (``stop`` waits for it), recorded like a scheduled run."""
        self._spawn(self.run(name))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- running and recording jobs ---------------------------------------------------------------------------

    async def run(self, name: str) -> JobResult:
        """Run one job now and record it (start, end, outcome, error) in ``job_runs``. Never raises."""
        jobs: dict[str, Callable[[], Awaitable[JobResult]]] = {
            "refresh": self.refresh,
            "digest": self.send_digest,
            "nudges": self.nudge,
            "reconcile": self.reconcile,
            "subscriptions": self.subscriptions,
            "questions": self.question_pings,
            "surveys": self.surveys,
        }
        community_id = self._community_id()
        run_id = await asyncio.to_thread(
            job_runs.start_job_run, self.engine, community_id, name, now=self.clock.now(), host=self.host
        )
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)  # APScheduler starts jobs as tasks of its own: stop() must still wait for them
        try:
            result = await jobs[name]()
        except Exception as exc:
            log.exception("scheduled job %s failed", name)
            result = JobResult("failed", f"{type(exc).__name__}: {exc}")
        finally:
            if task is not None:
                self._running.discard(task)
        await asyncio.to_thread(
            job_runs.finish_job_run,
            self.engine,
            run_id,
            now=self.clock.now(),
            outcome=result.outcome,
            detail=result.detail,
        )
        self.telemetry.job_finished(name, result.outcome)
        log.info("job %s: %s (%s)", name, result.outcome, result.detail)
        return result

    async def catch_up(self) -> JobResult | None:
        """At start: send the newest digest whose slot passed while the bot was down, if nobody sent it."""
        now = self.clock.now()
        monday = due_digest_week(now, self.settings)
        record = await asyncio.to_thread(digests.digest_record, self.engine, self._community_id(), _week(monday))
        if record is not None:
            return None
        first_run = await asyncio.to_thread(job_runs.first_job_run_at, self.engine, self._community_id())
        if first_run is None or first_run > digest_slot(monday, self.settings):
            return None  # the scheduler was not running for this community yet: nothing was missed
        return await self.run("digest")

    # --- the jobs ---------------------------------------------------------------------------------------------

    async def refresh(self) -> JobResult:
        """Record nudge outcomes (who came back within 7 days)."""
        updated = await asyncio.to_thread(
            nudge_log.record_nudge_outcomes,
            self.engine,
            self._community_id(),
            now=self.clock.now(),
            timezone=self.settings.community.tz,
            window_days=OUTCOME_WINDOW_DAYS,
        )
        return JobResult("ok", f"{plural(updated, 'nudge outcome')} recorded")

    async def send_digest(self) -> JobResult:
        """Claim the due week's digest and send it to the digest channels and, privately, to the owners."""
        now = self.clock.now()
        community_id = self._community_id()
        monday = due_digest_week(now, self.settings)
        week = _week(monday)
        slot = digest_slot(monday, self.settings)
        late = now - slot > LATE_AFTER
        targets = self.digest_targets()
        if not targets:
            # Claiming here would mark the week sent with nobody having read it.
            return JobResult("skipped", f"digest {week}: no digest channel or owner on a connected platform")
        claimed = await asyncio.to_thread(
            digests.claim_digest, self.engine, community_id, week, now=now, late=late, claimed_by=self.host
        )
        if not claimed:
            return JobResult("skipped", f"digest {week} already claimed")
        failures: list[str] = []
        owner_text: str | None = None
        for for_admins in (False, True):
            group = [t for t in targets if t[2] == for_admins]
            if not group:
                continue
            digest = await asyncio.to_thread(
                build_digest, self.engine, self.settings, community_id, now=slot, for_admins=for_admins
            )
            text = digest.text
            if late:
                local = slot.astimezone(self.settings.community.tz)
                note = rich(f"(Sent late: the bot was offline at {local:%A %H:%M}, when this digest was due.)")
                text = join([text, note])
            reply = Reply(text, attachments=digest.charts)
            if for_admins:
                owner_text = render_plain(text)  # kept with the week, so it can be shown again as the owners read it
            for platform, target, _, direct in group:
                failures.extend(await self._deliver(OutgoingMessage(platform, target, reply, direct=direct)))
        await asyncio.to_thread(
            digests.mark_digest_sent, self.engine, community_id, week, now=self.clock.now(), owner_text=owner_text
        )
        sent = len(targets) - len(failures)
        detail = f"digest {week}{' (late)' if late else ''} sent to {sent} of {plural(len(targets), 'target')}"
        if failures:
            detail += "; failed: " + "; ".join(failures)
        return JobResult("ok" if not failures or sent else "failed", detail)

    def digest_targets(self) -> list[tuple[str, str, bool, bool]]:
        """(platform, target id, for admins, direct) for every place the digest goes on a connected platform."""
        cfg = self.settings.digest
        targets: list[tuple[str, str, bool, bool]] = []
        if "telegram" in self.adapters:
            targets += [("telegram", str(chat), False, False) for chat in cfg.telegram_chat_ids]
            if cfg.send_to_owners:
                targets += [("telegram", str(user), True, True) for user in self.settings.telegram.owner_ids]
        if "discord" in self.adapters:
            targets += [("discord", str(channel), False, False) for channel in cfg.discord_channel_ids]
        # The console and the demo's simulated community have one reader, the owner at the terminal.
        targets += [(name, "owner", True, True) for name in self.adapters if name not in ("telegram", "discord")]
        return targets

    async def _deliver(self, message: OutgoingMessage) -> list[str]:
        adapter = self.adapters.get(message.platform)
        if adapter is None:
            return [f"{message.platform} {message.target}: platform not connected"]
        try:
            await adapter.send(message)
        except Exception as exc:  # one unreachable target must not keep the digest from the others
            log.warning("digest to %s %s failed: %s", message.platform, message.target, exc)
            return [f"{message.platform} {message.target}: {exc}"]
        return []

    async def nudge(self) -> JobResult:
        """Plan and send today's nudges within the budget, outside quiet hours."""
        cfg = self.settings.nudges
        now = self.clock.now()
        if in_quiet_hours(cfg.quiet_hours, now.astimezone(self.settings.community.tz).time()):
            return JobResult("skipped", "inside quiet hours")
        community_id = self._community_id()
        plan = await asyncio.to_thread(
            plan_nudges, self.engine, self.settings, community_id, now=now, platforms=set(self.adapters)
        )
        result = await run_nudges(
            plan,
            engine=self.engine,
            settings=self.settings,
            community_id=community_id,
            send=self._send_direct,
            now=self.clock.now,
            sleep=self.sleep,
            should_stop=lambda: self._stopping,
        )
        self.telemetry.dms_sent("nudge", result.sent, plan.skipped.get("over_budget", 0))
        detail = (
            f"eligible {plan.eligible}: sent {result.sent}, held out {result.held_out}, "
            f"unreachable {result.unreachable}, failed {result.failed}"
        )
        if result.stopped_by_quiet_hours:
            detail += "; stopped at the start of quiet hours"
        if result.stopped_by_shutdown:
            detail += "; stopped early because the bot was shutting down"
        return JobResult("ok", detail)

    async def _send_direct(self, message: OutgoingMessage) -> None:
        adapter = self.adapters.get(message.platform)
        if adapter is None:
            raise RuntimeError(f"{message.platform} is not connected")
        await adapter.send(message)

    async def reconcile(self) -> JobResult:
        """Make course roles and chats match purchases on every platform that controls access."""
        reconcilers: list[AccessReconciler] = [a for a in self.adapters.values() if isinstance(a, AccessReconciler)]
        report = await reconcile_access(self.engine, self.settings, self._community_id(), reconcilers)
        return JobResult("ok", report.detail())

    async def subscriptions(self) -> JobResult:
        """Remind members before their subscription renews; remove (once) those whose paid time ran out."""
        run = await run_subscriptions(
            self.engine,
            self.settings,
            self._community_id(),
            self.adapters,
            now=self.clock.now(),
            alerts=self.alerts,
        )
        return JobResult("ok", run.detail())

    async def question_pings(self) -> JobResult:
        """Ping once ([help] ping_role / ping_chat) for each help question left unanswered past the limit."""
        run = await run_question_pings(
            self.engine,
            self.settings,
            self._community_id(),
            send=self._send_direct,
            now=self.clock.now(),
            sleep=self.sleep,
        )
        return JobResult("ok" if not run.failed or run.pinged else "failed", run.detail())

    async def surveys(self) -> JobResult:
        """Queue the after-purchase NPS questions that are due and send queued survey DMs within the DM budget."""
        run = await send_survey_dms(
            self.engine,
            self.settings,
            self._community_id(),
            send=self._send_direct,
            now=self.clock.now,
            platforms=set(self.adapters),
            sleep=self.sleep,
            should_stop=lambda: self._stopping,
        )
        self.telemetry.dms_sent("survey", run.sent, run.over_budget)
        return JobResult("skipped" if run.quiet_hours and not run.sent else "ok", run.detail())


def _week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def job_names() -> Mapping[str, str]:
    """What each job does, for ``cohortbot jobs``."""
    return {
        "refresh": "records nudge outcomes",
        "digest": "sends the weekly owner digest",
        "nudges": "nudges inactive members",
        "reconcile": "makes course access match purchases",
        "subscriptions": "reminds before renewals and removes members whose subscription ended",
        "questions": "pings helpers once about each question left unanswered",
        "surveys": "sends survey questions privately (course buyers, after a purchase) within the DM budget",
    }
