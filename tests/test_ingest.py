"""Ingestion: every delivered event is stored exactly once and rollups follow, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage.catalog import CourseRecord, sync_courses
from storage.errors import UnknownCommunityError, UnknownCourseError, UnknownPurchaseError
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform, RefundEvent
from storage.ingest import IngestStore
from storage.local_days import LocalDays
from storage.models import (
    Channel,
    CommunityDailyTotals,
    Member,
    MemberActivity,
    MemberDailyActivity,
    MembershipEvent,
    Message,
    Purchase,
    Reaction,
    Refund,
)
from storage.rollups import compute_rollups, read_rollups
from storage.types import to_millis
from tests.conftest import COMMUNITY, T0, Events, hours

pytestmark = pytest.mark.storage


def rows(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def assert_rollups_consistent(store: IngestStore) -> None:
    cid = store.community_id(COMMUNITY)
    with store.engine.connect() as conn:
        assert read_rollups(conn, cid) == compute_rollups(conn, cid)


def member_day(engine: Engine, user: str, day: date) -> tuple[int, int, int, int] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                MemberDailyActivity.messages,
                MemberDailyActivity.replies,
                MemberDailyActivity.reactions_given,
                MemberDailyActivity.reactions_received,
            )
            .join(Member, Member.id == MemberDailyActivity.member_id)
            .where(Member.platform_user_id == user, MemberDailyActivity.day == day)
        ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3])


def test_replayed_messages_are_stored_once(store: IngestStore, ev: Events) -> None:
    batch = [ev.message("alice", at=T0 + hours(i)) for i in range(10)]
    first = store.write_batch(batch)
    assert first.messages == 10 and first.duplicates == 0
    # The platform redelivers everything after a reconnect, in another order, mixed with new messages.
    replay = [*reversed(batch), ev.message("bob", at=T0 + hours(11))]
    again = store.write_batch(replay)
    assert again.messages == 1 and again.duplicates == 10
    assert rows(store.engine, Message) == 11
    # 09:00..18:00 UTC is 10:00..19:00 in Berlin: one local day.
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (10, 0, 0, 0)
    assert_rollups_consistent(store)


def test_duplicates_inside_one_batch_count_once(store: IngestStore, ev: Events) -> None:
    m = ev.message("alice")
    result = store.write_batch([m, m, m])
    assert (result.messages, result.duplicates) == (1, 2)
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (1, 0, 0, 0)


def test_messages_are_bucketed_by_the_community_local_day(store: IngestStore, ev: Events) -> None:
    # 23:30 UTC on 4 March is 00:30 on 5 March in Berlin.
    store.write_batch([ev.message("alice", at=datetime(2024, 3, 4, 23, 30, tzinfo=UTC))])
    assert member_day(store.engine, "alice", date(2024, 3, 5)) == (1, 0, 0, 0)
    assert member_day(store.engine, "alice", date(2024, 3, 4)) is None


def test_one_batch_across_communities_and_a_clock_change_counts_local_hours(store: IngestStore) -> None:
    # Berlin's clocks went back at 01:00 UTC on 27 October 2024 (03:00 CEST -> 02:00 CET): 00:30 UTC and 01:30 UTC
    # are both 02:30 local. The same batch holds messages of a community in Tokyo (UTC+9, no DST), where 15:30
    # UTC is 00:30 the next day.
    store.register_community("tokyo", "Asia/Tokyo")
    berlin, tokyo = Events(), Events(community="tokyo")
    autumn = datetime(2024, 10, 27, tzinfo=UTC)
    batch = [
        berlin.message("alice", at=autumn + hours(0.5)),
        tokyo.message("kenji", at=autumn + hours(15.5)),
        berlin.message("alice", at=autumn + hours(1.5)),
        berlin.message("bob", at=autumn - hours(22.5)),  # 26 October, 03:30 CEST
        tokyo.message("kenji", at=autumn + hours(14.5)),  # 23:30 on the 27th in Tokyo
    ]
    assert store.write_batch(batch).messages == 5
    assert member_day(store.engine, "alice", date(2024, 10, 27)) == (2, 0, 0, 0)
    assert member_day(store.engine, "bob", date(2024, 10, 26)) == (1, 0, 0, 0)
    assert member_day(store.engine, "kenji", date(2024, 10, 27)) == (1, 0, 0, 0)
    assert member_day(store.engine, "kenji", date(2024, 10, 28)) == (1, 0, 0, 0)
    with store.engine.connect() as conn:
        berlin_hours = read_rollups(conn, store.community_id(COMMUNITY)).hours
        tokyo_hours = read_rollups(conn, store.community_id("tokyo")).hours
    assert berlin_hours == {(date(2024, 10, 27), 2): (2, 0), (date(2024, 10, 26), 3): (1, 0)}
    assert tokyo_hours == {(date(2024, 10, 27), 23): (1, 0), (date(2024, 10, 28), 0): (1, 0)}
    for community in (COMMUNITY, "tokyo"):
        cid = store.community_id(community)
        with store.engine.connect() as conn:
            assert read_rollups(conn, cid) == compute_rollups(conn, cid)


def test_replies_count_only_when_answering_someone_else(store: IngestStore, ev: Events) -> None:
    store.write_batch(
        [
            ev.message("alice", reply_to_user="bob"),
            ev.message("alice", reply_to_user="alice"),
            ev.message("alice"),
        ]
    )
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (3, 1, 0, 0)
    assert_rollups_consistent(store)


def test_text_is_not_stored_unless_the_owner_turns_it_on(engine: Engine, ev: Events) -> None:
    private = IngestStore(engine)
    private.register_community(COMMUNITY, "UTC")
    private.write_batch([ev.message("alice", text="my secret plan", message_id="1")])
    keeping = IngestStore(engine, store_text=True)
    keeping.register_community(COMMUNITY, "UTC")
    keeping.write_batch([ev.message("alice", text="hello world", message_id="2")])
    with engine.connect() as conn:
        texts = dict(conn.execute(select(Message.platform_message_id, Message.text)).all())
    assert texts == {"1": None, "2": "hello world"}


def test_bots_are_stored_but_never_counted(store: IngestStore, ev: Events) -> None:
    msg = ev.message("helperbot", bot=True, message_id="b1")
    store.write_batch([msg, ev.reaction("alice", "b1"), ev.message("alice", reply_to_user="helperbot")])
    assert rows(store.engine, Message) == 2
    assert member_day(store.engine, "helperbot", date(2024, 3, 4)) is None
    # Alice reacted to and replied to the bot: her activity counts, the bot receives nothing.
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (1, 1, 1, 0)
    with store.engine.connect() as conn:
        totals = conn.execute(select(CommunityDailyTotals.messages, CommunityDailyTotals.reactions)).one()
    assert tuple(totals) == (1, 1)
    assert_rollups_consistent(store)


def test_reactions_to_a_bot_found_among_stored_messages_credit_nobody(store: IngestStore, ev: Events) -> None:
    store.write_batch([ev.message("helperbot", bot=True, message_id="b1")])
    store.invalidate_caches()  # as after a restart or a member deletion: the bot is not in any cache
    store.write_batch([ev.reaction("alice", "b1", at=T0 + hours(1))])
    assert member_day(store.engine, "helperbot", date(2024, 3, 4)) is None
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (0, 0, 1, 0)
    assert_rollups_consistent(store)


def test_reactions_credit_the_author_found_among_stored_messages(store: IngestStore, ev: Events) -> None:
    store.write_batch([ev.message("alice", message_id="m1")])
    # Telegram does not name the author of the reacted message: storage looks it up.
    store.write_batch([ev.reaction("bob", "m1", at=T0 + hours(1)), ev.reaction("carol", "m1", at=T0 + hours(1))])
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (1, 0, 0, 2)
    assert member_day(store.engine, "bob", date(2024, 3, 4)) == (0, 0, 1, 0)
    # A reaction to a message we never saw still counts for the reactor (Discord raw events).
    store.write_batch([ev.reaction("bob", "unknown-message", at=T0 + hours(2))])
    assert member_day(store.engine, "bob", date(2024, 3, 4)) == (0, 0, 2, 0)
    assert_rollups_consistent(store)


def test_reaction_removed_then_replayed_add_stays_removed(store: IngestStore, ev: Events) -> None:
    store.write_batch([ev.message("alice", message_id="m1")])
    add = ev.reaction("bob", "m1", at=T0 + hours(1), author="alice")
    remove = ev.reaction("bob", "m1", at=T0 + hours(2), added=False, author="alice")
    store.write_batch([add])
    result = store.write_batch([remove])
    assert result.reactions_removed == 1
    store.write_batch([add, remove])  # replay after a reconnect
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (1, 0, 0, 0)
    assert member_day(store.engine, "bob", date(2024, 3, 4)) is None
    with store.engine.connect() as conn:
        assert conn.execute(select(Reaction.removed_at)).scalar_one() is not None
    # Reacting again later counts again.
    store.write_batch([ev.reaction("bob", "m1", at=T0 + hours(3), author="alice")])
    assert member_day(store.engine, "alice", date(2024, 3, 4)) == (1, 0, 0, 1)
    assert_rollups_consistent(store)


def test_removal_delivered_before_its_addition(store: IngestStore, ev: Events) -> None:
    add = ev.reaction("bob", "m1", at=T0 + hours(1))
    remove = ev.reaction("bob", "m1", at=T0 + hours(2), added=False)
    store.write_batch([remove])
    store.write_batch([add])
    assert member_day(store.engine, "bob", date(2024, 3, 4)) is None
    # And in one batch, in any order: the later instant wins.
    store.write_batch([ev.reaction("carol", "m1", at=T0 + hours(2), added=False), ev.reaction("carol", "m1", at=T0)])
    assert member_day(store.engine, "carol", date(2024, 3, 4)) is None
    assert_rollups_consistent(store)


def test_last_activity_falls_back_when_the_latest_reaction_is_removed(store: IngestStore, ev: Events) -> None:
    store.write_batch([ev.message("bob", at=T0), ev.reaction("bob", "x", at=T0 + hours(5))])
    store.write_batch([ev.reaction("bob", "x", at=T0 + hours(6), added=False)])
    with store.engine.connect() as conn:
        last = conn.execute(select(MemberActivity.last_active_at)).scalar_one()
    assert last == T0


def test_joins_and_leaves_are_idempotent_and_track_membership(store: IngestStore, ev: Events) -> None:
    day1, day9 = T0, T0 + timedelta(days=8)
    events = [ev.join("alice", at=day1), ev.leave("alice", at=day9), ev.join("alice", at=day9 + hours(1))]
    first = store.write_batch(events)
    again = store.write_batch([*events, ev.join("alice", at=day1)])
    assert (first.joins, first.leaves, again.duplicates) == (2, 1, 4)
    assert rows(store.engine, MembershipEvent) == 3
    with Session(store.engine) as session:
        m = session.scalars(select(Member).where(Member.platform_user_id == "alice")).one()
    assert m.first_joined_at == day1  # cohort: the first join
    assert m.last_left_at == day9 and m.last_joined_at == day9 + hours(1)  # rejoined: a member again
    assert_rollups_consistent(store)


def test_forum_topics_and_threads_become_channels(store: IngestStore, ev: Events) -> None:
    topic_msg = ev.message("alice", channel="-100123", thread="7")
    thread_msg = MessageEvent(
        platform=Platform.DISCORD,
        community=COMMUNITY,
        message_id="t1",
        channel=ChannelRef("999", name="help-thread", parent_id="555"),
        author=MemberRef("bob"),
        occurred_at=T0,
        length=3,
    )
    store.write_batch([topic_msg, thread_msg])
    with Session(store.engine) as session:
        channels = {c.platform_channel_id: c for c in session.scalars(select(Channel))}
        msg = session.scalars(select(Message).where(Message.platform_message_id == topic_msg.message_id)).one()
    assert set(channels) == {"-100123", "-100123#7", "999", "555"}
    assert channels["-100123#7"].parent_id == channels["-100123"].id
    assert channels["999"].parent_id == channels["555"].id and channels["999"].name == "help-thread"
    assert msg.thread_id == channels["-100123#7"].id and msg.channel_id == channels["-100123"].id


def test_display_names_follow_renames(store: IngestStore, ev: Events) -> None:
    store.write_batch([ev.message("alice", name="Alice")])
    store.write_batch([ev.message("alice", name="Alice the Great")])
    fresh = IngestStore(store.engine)  # a restarted bot with cold caches
    fresh.register_community(COMMUNITY, "Europe/Berlin")
    fresh.write_batch([ev.message("alice", name="Alice B.")])
    with store.engine.connect() as conn:
        assert conn.execute(select(Member.display_name)).scalar_one() == "Alice B."


def test_the_last_name_in_a_batch_wins_even_when_it_is_the_old_one(store: IngestStore, ev: Events) -> None:
    store.write_batch([ev.message("alice", name="Alice")])

    def name() -> str:
        with store.engine.connect() as conn:
            return str(conn.execute(select(Member.display_name)).scalar_one())

    store.write_batch([ev.message("alice", name=n) for n in ("Alice", "Ally", "Alice")])
    assert name() == "Alice"
    store.write_batch([ev.message("alice", name=n) for n in ("Alice", "Ally", "Alice", "Ally")])
    assert name() == "Ally"


def test_unknown_community_is_refused_and_nothing_is_stored(store: IngestStore) -> None:
    stranger = Events(community="not-registered")
    with pytest.raises(UnknownCommunityError, match="not-registered"):
        store.write_batch([Events().message("alice"), stranger.message("bob")])
    assert rows(store.engine, Message) == 0


def test_platforms_do_not_collide(store: IngestStore) -> None:
    discord, telegram = Events(Platform.DISCORD), Events(Platform.TELEGRAM)
    store.write_batch([discord.message("42", message_id="1"), telegram.message("42", message_id="1")])
    assert rows(store.engine, Message) == 2
    assert rows(store.engine, Member) == 2


def test_random_redelivery_stores_each_event_once(store: IngestStore, ev: Events) -> None:
    rng = random.Random(7)
    users = [f"u{i}" for i in range(15)]
    originals = []
    for i in range(400):
        at = T0 + timedelta(minutes=37 * i)
        if i % 4 == 3 and originals:
            target = rng.choice([e for e in originals if isinstance(e, MessageEvent)])
            originals.append(ev.reaction(rng.choice(users), target.message_id, at=at, emoji=rng.choice("👍🎉")))
        else:
            originals.append(ev.message(rng.choice(users), at=at, reply_to_user=rng.choice([None, *users])))
    deliveries = originals + rng.sample(originals, 150)
    rng.shuffle(deliveries)
    for start in range(0, len(deliveries), 37):
        store.write_batch(deliveries[start : start + 37])
    unique_reactions = {(e.message_id, e.member.user_id, e.emoji) for e in originals if not isinstance(e, MessageEvent)}
    assert rows(store.engine, Message) == sum(isinstance(e, MessageEvent) for e in originals)
    assert rows(store.engine, Reaction) == len(unique_reactions)
    assert_rollups_consistent(store)


# --- purchases and refunds -------------------------------------------------------------------------------------


@pytest.fixture
def shop(store: IngestStore) -> IngestStore:
    sync_courses(
        store.engine,
        store.community_id(COMMUNITY),
        [CourseRecord("py-async", "Async Python", price_stars=500)],
    )
    return store


def test_the_same_payment_delivered_twice_is_one_purchase(shop: IngestStore, ev: Events) -> None:
    sale = ev.purchase("alice", charge="tg-charge-1")
    first = shop.record_purchase(sale)
    second = shop.record_purchase(sale)
    assert first.created and not second.created and first.row_id == second.row_id
    assert rows(shop.engine, Purchase) == 1


def test_purchase_of_an_unknown_course_stores_nothing(shop: IngestStore, ev: Events) -> None:
    with pytest.raises(UnknownCourseError, match="rust-intro"):
        shop.record_purchase(ev.purchase("alice", course="rust-intro"))
    assert rows(shop.engine, Purchase) == 0


def test_refunds_are_recorded_once_and_need_a_purchase(shop: IngestStore, ev: Events) -> None:
    shop.record_purchase(ev.purchase("alice", charge="c1"))
    refund = RefundEvent(Platform.DISCORD, COMMUNITY, "c1", T0 + hours(2), reason="changed mind")
    assert shop.record_refund(refund).created
    assert not shop.record_refund(refund).created
    with pytest.raises(UnknownPurchaseError, match="nope"):
        shop.record_refund(RefundEvent(Platform.DISCORD, COMMUNITY, "nope", T0))
    assert rows(shop.engine, Refund) == 1


def test_removed_courses_stay_for_history_but_go_inactive(shop: IngestStore, ev: Events) -> None:
    shop.record_purchase(ev.purchase("alice"))
    sync_courses(shop.engine, shop.community_id(COMMUNITY), [CourseRecord("rust-intro", "Rust", price_stars=300)])
    from storage.catalog import list_courses

    cid = shop.community_id(COMMUNITY)
    assert [c.key for c in list_courses(shop.engine, cid)] == ["rust-intro"]
    assert [c.key for c in list_courses(shop.engine, cid, include_inactive=True)] == [
        "py-async",
        "rust-intro",
    ]


def test_utc_offsets_of_a_batch_change_only_at_clock_changes() -> None:
    days = LocalDays(ZoneInfo("Europe/Berlin"))
    spring = to_millis(datetime(2024, 3, 31, 1, 0, tzinfo=UTC))  # 02:00 CET -> 03:00 CEST
    hour = 3_600_000
    assert days.offset_runs([spring - 2 * hour, spring - 1]) == [(spring - 2 * hour, hour)]
    # Unordered instants; the run of the new offset starts at the change itself.
    assert days.offset_runs([spring + 5 * hour, spring - 2 * hour, spring + 1]) == [
        (spring - 2 * hour, hour),
        (spring, 2 * hour),
    ]
