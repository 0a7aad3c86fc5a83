"""The help channels' messages, for the question and answer figures (``analytics.questions``), and the ping claims.

Which channels are help channels: the ``[help] channels`` the owner lists (by platform id: a Discord channel or
forum, a Telegram chat, or a Telegram forum topic as ``"<chat>#<topic>"``), plus every Discord forum, minus
``[help] exclude``. Storage does not record a channel's type, so a forum is recognised by what Discord allows in
one: a top-level Discord channel with threads and no message of its own (a forum holds posts, never messages).
A listed Discord channel's threads (a forum's posts) are help threads too, each one question; its own messages, a
Telegram chat's and a topic's are flat places, read by the conversation heuristic.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, exists, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from analytics.questions import HELP_MESSAGES_COLUMNS, empty_help_messages
from storage.models import Channel, Member, Message, QuestionPing, table_of


@dataclass(frozen=True, slots=True)
class HelpScope:
    """``[help] channels`` and ``exclude`` as stored platform channel ids (``"123"``, ``"-100123#7"``)."""

    channels: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _HelpChannel:
    id: int
    platform: str
    platform_channel_id: str
    name: str
    topic: bool  # a Telegram forum topic listed on its own


def _help_channels(conn: Connection, community_id: int, scope: HelpScope) -> list[_HelpChannel]:
    """The community's help channels: the listed ones and the Discord forums, without the excluded ones."""
    excluded = set(scope.exclude)
    listed = set(scope.channels) - excluded
    own = Message.__table__.alias("own")
    kid = Channel.__table__.alias("kid")
    forum = and_(
        Channel.platform == "discord",
        Channel.parent_id.is_(None),
        exists(select(kid.c.id).where(kid.c.parent_id == Channel.id)),
        ~exists(select(own.c.id).where(own.c.channel_id == Channel.id)),
    )
    wanted = [forum]
    if listed:
        wanted.append(Channel.platform_channel_id.in_(sorted(listed)))
    rows = conn.execute(
        select(Channel.id, Channel.platform, Channel.platform_channel_id, Channel.name, Channel.parent_id)
        .where(Channel.community_id == community_id, or_(*wanted))
        .order_by(Channel.id)
    ).all()
    return [
        _HelpChannel(
            id=int(r.id),
            platform=str(r.platform),
            platform_channel_id=str(r.platform_channel_id),
            name=str(r.name or r.platform_channel_id),
            topic=r.platform == "telegram" and r.parent_id is not None,
        )
        for r in rows
        if r.platform_channel_id not in excluded
    ]


def help_messages(
    conn: Connection,
    community_id: int,
    scope: HelpScope,
    *,
    start: datetime,
    end: datetime,
    quiet_minutes: int,
) -> pd.DataFrame:
    """The messages ``analytics.questions`` needs for the questions asked in ``[start, end)``.

    Flat places from ``quiet_minutes`` before ``start`` (the silence before a question decides it is one); help
    threads whole up to ``end`` (a thread's question is its first message, however old).

    Args:
        conn: A connection.
        community_id: The community.
        scope: The help channels.
        start: The first instant questions are wanted from (UTC-aware).
        end: The end of the range, exclusive.
        quiet_minutes: ``[help] quiet_minutes``.

    Returns:
        A frame with ``HELP_MESSAGES_COLUMNS``, bots included (``is_bot``).
    """
    helps = _help_channels(conn, community_id, scope)
    if not helps:
        return empty_help_messages()
    channels = {
        int(r.id): r
        for r in conn.execute(
            select(Channel.id, Channel.platform_channel_id, Channel.parent_id, Channel.platform).where(
                Channel.community_id == community_id
            )
        ).all()
    }
    by_id = {h.id: h for h in helps}
    excluded = set(scope.exclude)
    flat_ids = [h.id for h in helps if not h.topic]
    topic_ids = [h.id for h in helps if h.topic]
    thread_ids = [
        cid
        for cid, r in channels.items()
        if r.parent_id in by_id and r.platform == "discord" and r.platform_channel_id not in excluded
    ]
    name = func.coalesce(Member.display_name, Member.username, Member.platform_user_id)
    columns = (
        Message.id,
        Message.platform_message_id,
        Message.channel_id,
        Message.thread_id,
        Message.member_id,
        name.label("name"),
        Member.is_bot,
        Message.created_at,
        Message.reply_to_member_id,
    )
    lower = start - timedelta(minutes=quiet_minutes)
    flat_where = [Message.channel_id.in_(flat_ids)] if flat_ids else []
    if topic_ids:
        flat_where.append(Message.thread_id.in_(topic_ids))
    rows: list[tuple[object, ...]] = []
    if flat_where:
        for r in conn.execute(
            select(*columns)
            .join(Member, Member.id == Message.member_id)
            .where(or_(*flat_where), Message.created_at >= lower, Message.created_at < end)
        ).all():
            if r.channel_id in by_id and not by_id[r.channel_id].topic:
                root, place = by_id[r.channel_id], (r.thread_id or r.channel_id)
                if r.thread_id is not None and channels[r.thread_id].platform_channel_id in excluded:
                    continue
            else:
                root, place = by_id[r.thread_id], r.thread_id
            link = channels[r.thread_id or r.channel_id].platform_channel_id
            rows.append(_row(r, root, place, False, link))
    if thread_ids:
        for r in conn.execute(
            select(*columns)
            .join(Member, Member.id == Message.member_id)
            .where(Message.channel_id.in_(thread_ids), Message.created_at < end)
        ).all():
            thread = channels[r.channel_id]
            rows.append(_row(r, by_id[thread.parent_id], r.channel_id, True, thread.platform_channel_id))
        rows = _move_starters(conn, rows, columns, channels, by_id, thread_ids, end)
    if not rows:
        return empty_help_messages()
    frame = pd.DataFrame(rows, columns=list(HELP_MESSAGES_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["reply_to_member_id"] = pd.array(frame["reply_to_member_id"].tolist(), dtype="Int64")
    for column in ("message_id", "channel_id", "place_id", "member_id"):
        frame[column] = frame[column].astype("int64")
    frame["in_thread"] = frame["in_thread"].astype(bool)
    frame["is_bot"] = frame["is_bot"].astype(bool)
    return frame


def _move_starters(
    conn: Connection,
    rows: list[tuple[object, ...]],
    columns: tuple[Any, ...],
    channels: dict[int, Any],
    by_id: dict[int, _HelpChannel],
    thread_ids: list[int],
    end: datetime,
) -> list[tuple[object, ...]]:
    """Give each thread started from a help channel's message that message, as the thread's question.

    Discord gives a thread started from a message that message's id; the message stays in the channel and the
    answers come in the thread. Counted apart, the message would look unanswered and the first answer in the thread
    would look like a question. So the starter joins its thread (its first message) and leaves the channel's flow.
    """
    parents = sorted({channels[t].parent_id for t in thread_ids if not by_id[channels[t].parent_id].topic})
    thread_of = {(channels[t].parent_id, channels[t].platform_channel_id): t for t in thread_ids}
    if not parents:
        return rows
    thread_names = select(Channel.platform_channel_id).where(Channel.parent_id.in_(parents))
    starters = [
        r
        for r in conn.execute(
            select(*columns)
            .join(Member, Member.id == Message.member_id)
            .where(
                Message.channel_id.in_(parents),
                Message.platform_message_id.in_(thread_names),
                Message.created_at < end,
            )
        ).all()
        if (r.channel_id, r.platform_message_id) in thread_of
    ]
    if not starters:
        return rows
    moved = {int(r.id) for r in starters}
    kept = [row for row in rows if row[0] not in moved]
    for r in starters:
        thread = thread_of[(r.channel_id, r.platform_message_id)]
        kept.append(_row(r, by_id[r.channel_id], thread, True, channels[r.channel_id].platform_channel_id))
    return kept


def _row(r: Any, root: _HelpChannel, place: int, in_thread: bool, link: str) -> tuple[object, ...]:
    return (
        r.id,
        root.platform,
        r.platform_message_id,
        root.id,
        root.name,
        place,
        in_thread,
        link,
        r.member_id,
        r.name,
        bool(r.is_bot),
        r.created_at,
        r.reply_to_member_id,
    )


def claim_ping(conn: Connection, community_id: int, message_id: int, *, at: datetime) -> bool:
    """Claim the one ping a waiting question gets: True for the caller that inserted the claim, False otherwise.

    The unique message id makes the claim hold across processes: of several schedulers, one pings.

    Args:
        conn: A connection inside a transaction (committed by the caller).
        community_id: The community.
        message_id: The question's stored message id.
        at: When.

    Returns:
        Whether this caller claimed it.
    """
    try:
        with conn.begin_nested():
            conn.execute(
                insert(table_of(QuestionPing)).values(community_id=community_id, message_id=message_id, claimed_at=at)
            )
    except IntegrityError:
        return False
    return True


def pinged(conn: Connection, message_ids: Collection[int]) -> set[int]:
    """Which of these questions were pinged (claimed) already."""
    if not message_ids:
        return set()
    rows = conn.execute(select(QuestionPing.message_id).where(QuestionPing.message_id.in_(list(message_ids))))
    return {int(r[0]) for r in rows}
