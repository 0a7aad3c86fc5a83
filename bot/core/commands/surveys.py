"""``/survey`` (admins: ask an NPS question or post a native poll) and ``/nps`` (members: answer one).

``/survey nps`` posts the 0–10 question with buttons where it is run; ``/survey nps <course>`` queues it for the
course's buyers, privately (the scheduler's ``surveys`` job sends it within the DM budget, never to members who
turned reminders off, never in quiet hours). ``/survey poll "question" "a" "b" …`` posts the platform's native poll,
non-anonymous, so each vote is attributable to its member. A score button runs ``/nps <survey> <score>``.
"""

from __future__ import annotations

import asyncio
import logging
import shlex

from bot.core.commands.base import CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.markup import bold, rich
from bot.core.ports import CapabilityError, DeliveryError, SurveyActions
from bot.core.replies import Reply
from bot.core.surveys import nps_question, nps_reply, thanks_reply
from storage import surveys
from storage.events import ChannelRef
from storage.members import human_member_count
from storage.surveys import COMMENT_LIMIT, SurveyError

log = logging.getLogger(__name__)

POLL_QUESTION_LIMIT = 300  # Telegram's and Discord's limit
POLL_OPTION_LIMIT = 55  # Discord's (Telegram allows 100)
POLL_USAGE = '/survey poll "question" "answer 1" "answer 2" … (2 to 10 answers, each in quotes)'
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})


def _survey_actions(ctx: CommandContext) -> SurveyActions:
    if not isinstance(ctx.actions, SurveyActions):
        raise UsageError(f"Surveys cannot be posted on {ctx.platform.value}.")
    return ctx.actions


def _where(ctx: CommandContext, what: str) -> None:
    if ctx.invocation.is_private or ctx.invocation.channel is None:
        raise UsageError(f"Run /survey {what} in the community channel where it should be posted.")


async def survey(ctx: CommandContext) -> Reply:
    """Ask the community: an NPS question (0–10 buttons), or a native poll."""
    kind = ctx.options["kind"]
    details = ctx.options.get("details", "").strip()
    if kind == "nps":
        return await _nps_to_buyers(ctx, details) if details else await _nps_here(ctx)
    return await _poll_here(ctx, details)


def _channel_key(channel: ChannelRef) -> str:
    """The channel id as storage keeps it: ``"<chat_id>#<topic_id>"`` for a Telegram forum topic or thread."""
    return channel.channel_id if channel.thread_id is None else f"{channel.channel_id}#{channel.thread_id}"


async def _nps_here(ctx: CommandContext) -> Reply:
    _where(ctx, "nps")
    actions = _survey_actions(ctx)
    channel = ctx.invocation.channel
    assert channel is not None  # checked by _where
    now = ctx.clock.now()
    audience = await asyncio.to_thread(human_member_count, ctx.engine, ctx.community_id)
    question = nps_question(ctx.settings.community.name)
    survey_id = await asyncio.to_thread(
        surveys.create_survey,
        ctx.engine,
        ctx.community_id,
        kind="nps",
        origin="channel",
        question=question,
        now=now,
        platform=ctx.platform.value,
        channel_id=_channel_key(channel),
        created_by=ctx.invoker.user_id,
        audience=audience,
    )
    try:
        posted = await actions.post_survey(channel, nps_reply(survey_id, question))
    except (DeliveryError, CapabilityError) as exc:
        await asyncio.to_thread(surveys.delete_survey, ctx.engine, survey_id)
        reason = exc.reason if isinstance(exc, DeliveryError) else str(exc)
        return Reply.say(f"I could not post the question here: {reason}.", private=True)
    await asyncio.to_thread(surveys.set_posted, ctx.engine, survey_id, message_id=posted.message_id)
    return Reply(
        rich(
            [f"Posted NPS question #{survey_id} here. Results: /report, the owners' digest and the dashboard."],
        ),
        private=True,
    )


async def _nps_to_buyers(ctx: CommandContext, course_id: str) -> Reply:
    course = ctx.course(course_id.lower())
    now = ctx.clock.now()
    buyers = await asyncio.to_thread(surveys.course_buyers, ctx.engine, ctx.community_id, course.id, now=now)
    reachable = await asyncio.to_thread(surveys.reachable_members, ctx.engine, buyers)
    if not buyers:
        return Reply(rich(["Nobody owns ", bold(course.title), " yet: there is nobody to ask."]), private=True)
    survey_id = await asyncio.to_thread(
        surveys.create_survey,
        ctx.engine,
        ctx.community_id,
        kind="nps",
        origin="dm",
        question=nps_question(course.title),
        now=now,
        course_key=course.id,
        platform=ctx.platform.value,
        created_by=ctx.invoker.user_id,
    )
    queued = await asyncio.to_thread(surveys.queue_dms, ctx.engine, survey_id, reachable, now=now)
    left_out = len(buyers) - len(reachable)
    cfg = ctx.settings.nudges
    lines: list[str] = [
        f"NPS question #{survey_id} about {course.title} is queued for {queued} of its {len(buyers)} buyers"
        + (f" ({left_out} turned reminders off or cannot be messaged, and are not asked)." if left_out else "."),
        f"It goes out privately with the next survey run (every {ctx.settings.schedule.refresh_minutes} minutes), "
        f"never in quiet hours ({cfg.quiet_hours.start:%H:%M}–{cfg.quiet_hours.end:%H:%M}), and with nudges at most "
        f"{cfg.max_per_day} direct messages a day ([nudges] max_per_day).",
    ]
    return Reply(rich(*lines), private=True)


def _poll_parts(details: str) -> tuple[str, tuple[str, ...]]:
    try:
        parts = [p.strip() for p in shlex.split(details.translate(_SMART_QUOTES))]
    except ValueError as exc:
        raise UsageError(f"The poll could not be read ({exc}). Usage: {POLL_USAGE}") from exc
    parts = [p for p in parts if p]
    if len(parts) < 3 or len(parts) > 11:
        raise UsageError(f"A poll needs a question and 2 to 10 answers. Usage: {POLL_USAGE}")
    question, answers = parts[0], tuple(parts[1:])
    if len(question) > POLL_QUESTION_LIMIT:
        raise UsageError(f"The question is {len(question)} characters; the platforms allow {POLL_QUESTION_LIMIT}.")
    for answer in answers:
        if len(answer) > POLL_OPTION_LIMIT:
            raise UsageError(f"The answer {answer[:20]!r}… is longer than {POLL_OPTION_LIMIT} characters.")
    if len({a.casefold() for a in answers}) != len(answers):
        raise UsageError("Two answers are the same; every answer must differ.")
    return question, answers


async def _poll_here(ctx: CommandContext, details: str) -> Reply:
    question, answers = _poll_parts(details)
    _where(ctx, "poll")
    actions = _survey_actions(ctx)
    channel = ctx.invocation.channel
    assert channel is not None  # checked by _where
    try:
        posted = await actions.post_poll(channel, question, answers)
    except (DeliveryError, CapabilityError) as exc:
        reason = exc.reason if isinstance(exc, DeliveryError) else str(exc)
        return Reply.say(f"I could not post the poll here: {reason}.", private=True)
    audience = await asyncio.to_thread(human_member_count, ctx.engine, ctx.community_id)
    survey_id = await asyncio.to_thread(
        surveys.create_survey,
        ctx.engine,
        ctx.community_id,
        kind="poll",
        origin="channel",
        question=question,
        options=answers,
        now=ctx.clock.now(),
        platform=ctx.platform.value,
        channel_id=_channel_key(channel),
        created_by=ctx.invoker.user_id,
        audience=audience,
    )
    await asyncio.to_thread(
        surveys.set_posted, ctx.engine, survey_id, message_id=posted.message_id, poll_id=posted.poll_id
    )
    return Reply.say(f"Posted poll #{survey_id}: votes name their members, and the report counts them.", private=True)


async def nps(ctx: CommandContext) -> Reply:
    """Answer a satisfaction question: a score from 0 to 10, and a comment if you want to."""
    raw_id, raw_score = ctx.options["survey"].lstrip("#"), ctx.options["score"]
    if not raw_id.isdigit():
        raise UsageError(f"{ctx.options['survey']!r} is not a survey number; use the buttons under the question.")
    if not raw_score.isdigit() or not 0 <= int(raw_score) <= 10:
        raise UsageError(f"The score is a whole number from 0 to 10, not {raw_score!r}.")
    survey_id, score = int(raw_id), int(raw_score)
    comment = ctx.options.get("comment", "").strip() or None
    if comment is not None and len(comment) > COMMENT_LIMIT:
        raise UsageError(f"A comment has at most {COMMENT_LIMIT} characters; yours has {len(comment)}.")
    record = await asyncio.to_thread(surveys.get_survey, ctx.engine, ctx.community_id, survey_id)
    if record is None or record.kind != "nps":
        raise UsageError(f"There is no satisfaction question #{survey_id}.")
    try:
        answer = await asyncio.to_thread(
            surveys.record_answer,
            ctx.engine,
            ctx.community_id,
            survey_id,
            ctx.platform.value,
            ctx.invoker.user_id,
            now=ctx.clock.now(),
            score=score,
            comment=comment,
        )
    except SurveyError as exc:
        raise UsageError(str(exc).capitalize() + ".") from exc
    return thanks_reply(survey_id, score, answer.comment, commented_now=comment is not None)


SURVEY_MEMBER_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "nps",
        nps,
        options=(
            OptionSpec("survey", "The question's number (the buttons fill it in)"),
            OptionSpec("score", "0 (not at all likely) to 10 (extremely likely)"),
            OptionSpec("comment", "Why? Optional: stored only because you write it", required=False),
        ),
    ),
)

SURVEY_ADMIN_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "survey",
        survey,
        options=(
            OptionSpec("kind", "nps (0–10 question) or poll (native poll)", kind="choice", choices=("nps", "poll")),
            OptionSpec(
                "details",
                'nps: a course id to ask its buyers privately; poll: "question" "answer 1" "answer 2" …',
                required=False,
            ),
        ),
        admin=True,
    ),
)
