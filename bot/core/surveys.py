"""Surveys: what the NPS question says, how an answer is taken, how survey DMs go out, and the digest's section.

An NPS question is a message with eleven buttons (0–10), each running ``/nps <survey> <score>`` as the member who
presses it; the answer thanks them privately and offers a comment (``/nps <survey> <score> <words>``), which is
stored only because the member writes it. Native polls are the platforms' own (non-anonymous, so every vote names
its member); the adapters hand their votes to :func:`receive_poll_vote`.

Survey DMs (a course's buyers, ``/survey nps <course>``; the automatic question ``[surveys] after_purchase_days``
after a purchase) are queued in the database once per member and survey, and sent by the scheduler's ``surveys``
job: members who turned reminders off (``/nudges off``) or cannot be reached are never messaged, nothing goes out
in ``[nudges] quiet_hours``, and survey DMs and nudges together stay within ``[nudges] max_per_day`` (each run
within ``max_per_run``, paced at ``max_per_minute``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from analytics.formatting import fmt_pct, plural
from analytics.surveys import SurveyResults
from bot.config import Settings
from bot.core.markup import Rich, Span, bold, rich
from bot.core.nudges import in_quiet_hours
from bot.core.ports import DeliveryError
from bot.core.replies import Button, OutgoingMessage, Reply
from storage import nudge_log, surveys
from storage.surveys import SurveyError, SurveyRecord

log = logging.getLogger(__name__)

NPS_QUESTION = "How likely are you to recommend {subject} to a friend?"
COMMENT_NOTE = (
    "A comment is stored only because you write it: /mydata shows it and /forget deletes it with your other data."
)

Send = Callable[[OutgoingMessage], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


def nps_question(subject: str) -> str:
    """The NPS question about ``subject`` (the community's or a course's name)."""
    return NPS_QUESTION.format(subject=subject)


def nps_reply(survey_id: int, question: str, *, private: bool = False) -> Reply:
    """The NPS question with its 0–10 buttons (two lines on Telegram)."""
    buttons = tuple(
        Button(str(score), "command", f"/nps {survey_id} {score}", row=0 if score <= 5 else 1) for score in range(11)
    )
    return Reply(
        rich(
            [bold(question)],
            "Tap a score: 0 is not at all likely, 10 is extremely likely. Afterwards you may add a comment, if you "
            "want to; it is stored only if you write one.",
        ),
        private=private,
        buttons=buttons,
    )


def thanks_reply(survey_id: int, score: int, comment: str | None, *, commented_now: bool) -> Reply:
    """What a member is told after answering: their score, and how to add (or that they added) a comment."""
    if commented_now:
        return Reply(
            rich(f"Thank you: your score {score} and your comment are saved.", COMMENT_NOTE),
            private=True,
        )
    lines: list[Sequence[Span | str] | str] = [f"Thank you: your score {score} is saved. You can change it any time."]
    if comment:
        lines.append("Your earlier comment is kept; send a new one the same way to replace it.")
    lines.append(
        f"Want to say why? Send /nps {survey_id} {score} followed by your words. Writing one is up to you. "
        + COMMENT_NOTE
    )
    return Reply(rich(*lines), private=True)


# --- native polls ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollVote:
    """A vote on a native poll as a platform reports it.

    Attributes:
        platform: ``telegram`` or ``discord``.
        poll_id: Telegram's poll id; Discord's poll message id.
        user_id: The voter.
        option: The chosen answer's index (from 0), or None when the vote was withdrawn.
        removed: A Discord ``MESSAGE_POLL_VOTE_REMOVE``: withdraw ``option`` if it is still the member's vote.
    """

    platform: str
    poll_id: str
    user_id: str
    option: int | None
    removed: bool = False


def receive_poll_vote(engine: Engine, community_id: int, vote: PollVote, *, now: datetime) -> bool:
    """Store (or change, or withdraw) a native poll vote (blocking: run it in a thread from async code).

    A replayed vote stores the same answer again; a vote on a poll that is not one of ours is ignored.

    Returns:
        Whether the vote belonged to one of our polls.
    """
    survey = surveys.survey_by_poll(engine, community_id, vote.platform, vote.poll_id)
    if survey is None:
        return False
    if vote.removed or vote.option is None:
        surveys.retract_answer(engine, community_id, survey.id, vote.platform, vote.user_id, option=vote.option)
        return True
    try:
        surveys.record_answer(engine, community_id, survey.id, vote.platform, vote.user_id, now=now, option=vote.option)
    except SurveyError as exc:
        log.warning("ignored a %s vote on poll %s: %s", vote.platform, vote.poll_id, exc)
    return True


# --- survey DMs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyDmRun:
    """What one run of the survey DMs did."""

    queued: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    over_budget: int = 0
    quiet_hours: bool = False

    def detail(self) -> str:
        """One line for ``job_runs``."""
        text = (
            f"survey DMs: {self.queued} newly queued, sent {self.sent}, skipped {self.skipped} (opted out or "
            f"unreachable), failed {self.failed}, left for later {self.over_budget}"
        )
        return text + ("; inside quiet hours" if self.quiet_hours else "")


def queue_after_purchase(engine: Engine, settings: Settings, community_id: int, *, now: datetime) -> int:
    """Queue the after-purchase NPS question for buyers whose purchase is ``after_purchase_days`` old (once each)."""
    days = settings.surveys.after_purchase_days
    if days <= 0:
        return 0
    titles = {course.id: course.title for course in settings.courses}
    queued = 0
    for course_key, member_ids in surveys.due_after_purchase(engine, community_id, days=days, now=now).items():
        question = nps_question(titles.get(course_key, course_key))
        survey_id = surveys.after_purchase_survey(engine, community_id, course_key, question, now=now)
        queued += surveys.queue_dms(engine, survey_id, member_ids, now=now)
    return queued


def dm_budget(engine: Engine, settings: Settings, community_id: int, *, now: datetime) -> int:
    """How many DMs may go out now.

    At most ``[nudges] max_per_run``, and what is left of ``max_per_day`` after the nudges and survey DMs already
    sent today (the community's day).
    """
    cfg = settings.nudges
    tz = ZoneInfo(settings.community.timezone)
    midnight = datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
    sent = nudge_log.nudges_sent_since(engine, community_id, midnight)
    sent += surveys.survey_dms_sent_since(engine, community_id, midnight)
    return max(0, min(cfg.max_per_run, cfg.max_per_day - sent))


async def send_survey_dms(
    engine: Engine,
    settings: Settings,
    community_id: int,
    *,
    send: Send,
    now: Callable[[], datetime],
    platforms: Collection[str],
    sleep: Sleep = asyncio.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> SurveyDmRun:
    """Queue the after-purchase questions that are due, then send queued survey DMs within the budget.

    Members who turned reminders off or cannot be reached are claimed and marked, never messaged. A DM is claimed
    in the database before it is sent, so it goes out once even with two processes. Members on a platform that is
    not connected stay queued.
    """
    queued = await asyncio.to_thread(queue_after_purchase, engine, settings, community_id, now=now())
    tz = ZoneInfo(settings.community.timezone)
    if in_quiet_hours(settings.nudges.quiet_hours, now().astimezone(tz).time()):
        return SurveyDmRun(queued=queued, quiet_hours=True)
    pending = await asyncio.to_thread(surveys.pending_dms, engine, community_id)
    budget = await asyncio.to_thread(dm_budget, engine, settings, community_id, now=now())
    pause = 60.0 / settings.nudges.max_per_minute
    sent = skipped = failed = 0
    cache: dict[int, SurveyRecord | None] = {}
    quiet = False
    left = 0
    for index, dm in enumerate(pending):
        if dm.platform not in platforms:
            continue
        if dm.opted_out or dm.unreachable:
            if await asyncio.to_thread(surveys.claim_dm, engine, dm.dm_id, now=now()):
                reason = "opted out of reminders" if dm.opted_out else "does not accept direct messages"
                await asyncio.to_thread(surveys.finish_dm, engine, dm.dm_id, sent_at=None, error=reason)
                skipped += 1
            continue
        if sent + failed >= budget:
            left = sum(1 for d in pending[index:] if d.platform in platforms and not (d.opted_out or d.unreachable))
            break
        if should_stop():
            break
        if in_quiet_hours(settings.nudges.quiet_hours, now().astimezone(tz).time()):
            quiet = True
            break
        if dm.survey_id not in cache:
            cache[dm.survey_id] = await asyncio.to_thread(surveys.get_survey, engine, community_id, dm.survey_id)
        survey = cache[dm.survey_id]
        if survey is None or not await asyncio.to_thread(surveys.claim_dm, engine, dm.dm_id, now=now()):
            continue
        if sent + failed:
            await sleep(pause)
        error: str | None = None
        try:
            await send(
                OutgoingMessage(dm.platform, dm.user_id, nps_reply(survey.id, survey.question, private=True), True)
            )
        except DeliveryError as exc:
            error = exc.reason
            if exc.unreachable_user:
                await asyncio.to_thread(nudge_log.mark_unreachable, engine, dm.member_id, now=now())
        except Exception as exc:  # one member's failure must not stop the run
            log.exception("survey DM to %s user %s failed", dm.platform, dm.user_id)
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            sent += 1
        else:
            failed += 1
        await asyncio.to_thread(surveys.finish_dm, engine, dm.dm_id, sent_at=None if error else now(), error=error)
    return SurveyDmRun(queued=queued, sent=sent, skipped=skipped, failed=failed, over_budget=left, quiet_hours=quiet)


# --- the owners' digest ----------------------------------------------------------------------------------------


def _nps_text(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or low is None or high is None:
        return "no scores"
    return f"{value:+.0f} (95% interval {low:+.0f} to {high:+.0f})"


def digest_section(results: SurveyResults | None, *, comments: int = 3) -> Rich | None:
    """The owners' digest section: NPS overall and per course, the response rate, the newest comments.

    Only for the owners' digest: comments are members' own words and never shown to members. None when no NPS
    question was ever answered.
    """
    if results is None or results.overall.responses == 0:
        return None
    overall = results.overall
    lines: list[Sequence[Span | str] | str] = [
        [bold("Satisfaction (NPS)")],
        f"All answers: NPS {_nps_text(overall.nps, overall.low, overall.high)} from "
        f"{plural(overall.responses, 'answer')}"
        + (f", response rate {fmt_pct(overall.response_rate)}." if overall.response_rate is not None else "."),
    ]
    for course in results.by_course:
        if course.figure.responses == 0:
            continue
        name = course.course or "the community"
        lines.append(
            f"{name}: NPS {_nps_text(course.figure.nps, course.figure.low, course.figure.high)}, "
            f"{plural(course.figure.responses, 'answer')}"
        )
    if results.by_month:
        last = results.by_month[-1]
        lines.append(f"{last.month}: NPS {_nps_text(last.figure.nps, last.figure.low, last.figure.high)}.")
    shown = 0
    for group in results.comments:
        for comment in group.comments:
            if shown >= comments:
                break
            lines.append(f"“{comment}” ({group.band}, {group.course or 'community'})")
            shown += 1
    return rich(*lines)
