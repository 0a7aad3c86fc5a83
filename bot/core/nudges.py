"""Nudges: one kind, personal message to members who went quiet — and the holdout that proves whether it works.

A run plans first (who is eligible, who is held out, what the budget allows), then sends at a pace well below
the platforms' spam thresholds, recording every decision. Holdout members are chosen by a stable hash of the
member, so the same member is always in the same group and the share matches ``[nudges] holdout_share``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from analytics.experiments import rate_difference
from analytics.formatting import plural
from bot.config import QuietHours, Settings
from bot.core.markup import Rich, Span, bold, rich
from bot.core.ports import DeliveryError
from bot.core.replies import Button, OutgoingMessage, Reply
from bot.reporting import inactive_members_as_of
from storage import nudge_log
from storage.nudge_log import NudgeCandidate
from storage.surveys import survey_dms_sent_since

log = logging.getLogger(__name__)

NUDGED, HOLDOUT = "nudged", "holdout"
OUTCOME_WINDOW_DAYS = 7

Send = Callable[[OutgoingMessage], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class NudgePlan:
    """Who a nudge run would message, hold out and skip (and why)."""

    as_of: date
    eligible: int
    planned: tuple[NudgeCandidate, ...]
    holdout: tuple[NudgeCandidate, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        """The plan as ``cohortbot nudges --dry-run --format json`` prints it."""
        return json.dumps(
            {
                "as_of": self.as_of.isoformat(),
                "eligible": self.eligible,
                "planned": [c.member_id for c in self.planned],
                "holdout": [c.member_id for c in self.holdout],
                "skipped": dict(sorted(self.skipped.items())),
            },
            indent=2,
        )


@dataclass(frozen=True, slots=True)
class NudgeRunResult:
    """What a run did."""

    sent: int = 0
    failed: int = 0
    unreachable: int = 0
    held_out: int = 0
    stopped_by_quiet_hours: bool = False
    stopped_by_shutdown: bool = False


def in_holdout(community_id: int, member_id: int, share: float) -> bool:
    """Whether the member belongs to the holdout group: a stable, uniform hash of the member below ``share``."""
    digest = hashlib.sha256(f"cohortbot-holdout:{community_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def in_quiet_hours(quiet: QuietHours, moment: time) -> bool:
    """Whether a local time falls inside the quiet window (which may wrap past midnight; start == end: none)."""
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= moment < quiet.end
    return moment >= quiet.start or moment < quiet.end


def plan_nudges(
    engine: Engine,
    settings: Settings,
    community_id: int,
    *,
    now: datetime,
    platforms: Collection[str],
) -> NudgePlan:
    """Decide who to nudge now (blocking: run it in a thread from async code).

    Args:
        engine: The database.
        settings: The configuration (``[nudges]``).
        community_id: The community's id.
        now: The current instant.
        platforms: Platforms that can deliver direct messages right now; members elsewhere are skipped.

    Returns:
        The plan: eligible members split into the planned (within budget) and the held-out, and skip reasons.
    """
    cfg = settings.nudges
    tz = ZoneInfo(settings.community.timezone)
    today = now.astimezone(tz).date()
    # Only the inactive list is needed: a full report per daily run would cost several times as much.
    inactive = inactive_members_as_of(
        engine, settings.community.name, as_of=today, inactive_after_days=cfg.inactive_after_days
    )
    candidates = nudge_log.nudge_candidates(engine, community_id, [m.member_id for m in inactive])
    # Planning a past day (a dry run with --as-of) must not show activity that happened after it.
    silent = {m.member_id: m.days_since_active for m in inactive}
    candidates = [_as_of(c, today, silent.get(c.member_id), tz) for c in candidates]
    skipped: Counter[str] = Counter()
    eligible: list[NudgeCandidate] = []
    cooldown_start = now - timedelta(days=cfg.cooldown_days)
    for candidate in candidates:
        if candidate.opted_out:
            skipped["opted_out"] += 1
        elif candidate.last_nudged_at is not None and candidate.last_nudged_at > cooldown_start:
            skipped["cooldown"] += 1
        elif candidate.unreachable:
            skipped["unreachable"] += 1
        elif candidate.platform not in platforms:
            skipped["platform_not_connected"] += 1
        else:
            eligible.append(candidate)
    treat = [c for c in eligible if not in_holdout(community_id, c.member_id, cfg.holdout_share)]
    hold = [c for c in eligible if in_holdout(community_id, c.member_id, cfg.holdout_share)]
    local_midnight = datetime.combine(today, time(0), tzinfo=tz)
    # One daily DM budget: survey questions sent privately today (bot.core.surveys) count against it too.
    sent_today = nudge_log.nudges_sent_since(engine, community_id, local_midnight)
    sent_today += survey_dms_sent_since(engine, community_id, local_midnight)
    budget = max(0, min(cfg.max_per_run, cfg.max_per_day - sent_today))
    planned = treat[:budget]
    if len(treat) > budget:
        skipped["over_budget"] = len(treat) - budget
    # Hold out in proportion to what is actually sent, so the recorded groups keep the configured share even
    # when the budget, not the number of inactive members, limits a run. The rest stay eligible for later runs.
    share = cfg.holdout_share
    held = hold if len(treat) <= budget else hold[: round(len(planned) * share / (1 - share))]
    return NudgePlan(
        as_of=today,
        eligible=len(eligible),
        planned=tuple(planned),
        holdout=tuple(held),
        skipped=dict(skipped),
    )


def _as_of(candidate: NudgeCandidate, today: date, days_silent: int | None, tz: ZoneInfo) -> NudgeCandidate:
    if candidate.last_active_at is None or days_silent is None:
        return candidate
    if candidate.last_active_at.astimezone(tz).date() <= today - timedelta(days=days_silent):
        return candidate
    last_day = today - timedelta(days=days_silent)
    return replace(candidate, last_active_at=datetime.combine(last_day, time(12), tzinfo=tz))


def highlights(engine: Engine, community_id: int, since: date) -> str:
    """One sentence on what happened since ``since``: the busiest channels (and nothing when it was quiet)."""
    channels = nudge_log.busiest_channels(engine, community_id, since, limit=2)
    if not channels:
        return ""
    parts = [f"#{name.lstrip('#')} had {plural(n, 'message')}" for name, n in channels]
    return f"Since then {' and '.join(parts)}."


def compose(settings: Settings, candidate: NudgeCandidate, *, highlight: str) -> Reply:
    """The nudge for one member, from the owner's template, with a button to turn nudges off."""
    tz = ZoneInfo(settings.community.timezone)
    since = candidate.last_active_at.astimezone(tz) if candidate.last_active_at else None
    text = settings.nudges.template.format(
        name=candidate.name,
        community=settings.community.name,
        since=f"{since.day} {since:%B}" if since else "a while",
        highlights=highlight,
    )
    text = " ".join(text.split())  # an empty {highlights} must not leave a double space
    return Reply(rich(text), private=True, buttons=(Button("Stop these reminders", "command", "/nudges off"),))


async def run_nudges(
    plan: NudgePlan,
    *,
    engine: Engine,
    settings: Settings,
    community_id: int,
    send: Send,
    now: Callable[[], datetime],
    sleep: Sleep = asyncio.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> NudgeRunResult:
    """Send the planned nudges at ``[nudges] max_per_minute`` and record every decision.

    Holdout decisions are recorded first (they start the same cooldown and their comebacks are measured the
    same way). Sending stops when quiet hours begin, or when ``should_stop()`` turns true (the bot is shutting
    down); the rest stay eligible for the next run.
    """
    cfg = settings.nudges
    tz = ZoneInfo(settings.community.timezone)
    decided = now()
    for candidate in plan.holdout:
        await asyncio.to_thread(
            nudge_log.record_nudge, engine, community_id, candidate.member_id, group=HOLDOUT, decided_at=decided
        )
    sent = failed = unreachable = 0
    stopped = interrupted = False
    pause = 60.0 / cfg.max_per_minute
    for index, candidate in enumerate(plan.planned):
        if index:
            await sleep(pause)
        if should_stop():
            interrupted = True
            log.info("nudge run stopped by shutdown after %d of %d", index, len(plan.planned))
            break
        if in_quiet_hours(cfg.quiet_hours, now().astimezone(tz).time()):
            stopped = True
            log.info("nudge run paused by quiet hours after %d of %d", index, len(plan.planned))
            break
        since = (candidate.last_active_at or decided).astimezone(tz).date()
        highlight = await asyncio.to_thread(highlights, engine, community_id, since)
        message = OutgoingMessage(
            candidate.platform, candidate.user_id, compose(settings, candidate, highlight=highlight), direct=True
        )
        error: str | None = None
        try:
            await send(message)
        except DeliveryError as exc:
            error = exc.reason
            if exc.unreachable_user:
                unreachable += 1
                await asyncio.to_thread(nudge_log.mark_unreachable, engine, candidate.member_id, now=now())
            else:
                failed += 1
        except Exception as exc:  # one member's failure must not stop the run
            log.exception("nudge to %s user %s failed", candidate.platform, candidate.user_id)
            error = f"{type(exc).__name__}: {exc}"
            failed += 1
        else:
            sent += 1
        await asyncio.to_thread(
            nudge_log.record_nudge,
            engine,
            community_id,
            candidate.member_id,
            group=NUDGED,
            decided_at=decided,
            sent_at=None if error else now(),
            error=error,
        )
    return NudgeRunResult(
        sent=sent,
        failed=failed,
        unreachable=unreachable,
        held_out=len(plan.holdout),
        stopped_by_quiet_hours=stopped,
        stopped_by_shutdown=interrupted,
    )


def nudge_results(engine: Engine, community_id: int, *, week_end: datetime) -> Rich | None:
    """The digest's nudge section: did nudged members come back more often than the holdout?

    Looks at decisions made in the four weeks whose 7-day outcome window closed by ``week_end``. None when no
    nudge was decided then (nudges off, or nobody inactive).
    """
    window = timedelta(days=OUTCOME_WINDOW_DAYS)
    counts = nudge_log.nudge_outcome_counts(
        engine, community_id, decided_between=(week_end - window - timedelta(weeks=4), week_end - window)
    )
    if counts.nudged + counts.holdout == 0:
        return None
    diff = rate_difference(counts.nudged_reactivated, counts.nudged, counts.holdout_reactivated, counts.holdout)
    lines: list[Sequence[Span | str] | str] = [
        [bold("Nudges"), " (decided in the 4 weeks before the last 7 days)"],
        f"Came back within {OUTCOME_WINDOW_DAYS} days: nudged {_share(counts.nudged_reactivated, counts.nudged)}, "
        f"not nudged (holdout) {_share(counts.holdout_reactivated, counts.holdout)}.",
    ]
    if diff.difference is None or diff.low is None or diff.high is None:
        lines.append("No comparison yet: both groups need members (the holdout is [nudges] holdout_share).")
    else:
        effect = (
            f"Difference: {diff.difference * 100:+.0f} points "
            f"(95% interval {diff.low * 100:+.0f} to {diff.high * 100:+.0f})."
        )
        if diff.conclusive:
            verdict = "Nudges bring members back." if diff.difference > 0 else "Nudged members came back less often."
        else:
            verdict = "Not conclusive yet: the interval includes zero; more nudges will tell."
        lines.append(f"{effect} {verdict}")
    return rich(*lines)


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.0%})" if whole else "none"
