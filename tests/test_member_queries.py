"""Per-member queries: the data export covers every member-data table with only that member's rows; lookups."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from storage.deletion import member_data_tables
from storage.events import MemberRef, MessageEvent, Platform, RefundEvent
from storage.export import export_member_data
from storage.ingest import IngestStore
from storage.ledger import live_purchase, owned_courses
from storage.members import MemberLookupError, find_member, member_stats, resolve_member, set_nudges_opt_out
from storage.models import Member, MembershipEvent, Nudge
from tests.conftest import COMMUNITY, T0, Events
from tests.helpers.fake_actions import two_course_settings

pytestmark = pytest.mark.storage

NOW = T0 + timedelta(days=10)


def _catalog(engine: Engine, store: IngestStore) -> int:
    from bot.app import course_records
    from storage.catalog import sync_courses

    cid = store.community_id(COMMUNITY)
    sync_courses(engine, cid, course_records(two_course_settings()))
    return cid


def _seed_two_members(engine: Engine, store: IngestStore) -> tuple[int, int, int]:
    """Ann and Bob with a bit of everything; Bob replies to Ann, reacts to her, and granted her a course."""
    cid = _catalog(engine, store)
    ev = Events(Platform.TELEGRAM)
    ann_msg = ev.message("ann", at=T0, name="Ann")
    bob_msg = ev.message("bob", at=T0 + timedelta(hours=1), name="Bob", reply_to_user="ann")
    store.write_batch(
        [
            ev.join("ann", at=T0 - timedelta(days=1)),
            ev.join("bob", at=T0 - timedelta(days=1)),
            ann_msg,
            bob_msg,
            ev.reaction("ann", bob_msg.message_id, at=T0 + timedelta(hours=2), author="bob"),
            ev.reaction("bob", ann_msg.message_id, at=T0 + timedelta(hours=3), author="ann"),
        ]
    )
    bought = ev.purchase("ann", "py-async", charge="ch-ann-1")
    store.record_purchase(bought)
    store.record_refund(RefundEvent(Platform.TELEGRAM, COMMUNITY, "ch-ann-1", T0 + timedelta(days=1)))
    store.record_purchase(ev.purchase("ann", "rust-intro", charge="ch-ann-2", amount=350))
    store.record_purchase(ev.purchase("bob", "py-async", charge="ch-bob-1"))
    ann = find_member(engine, cid, "telegram", "ann")
    bob = find_member(engine, cid, "telegram", "bob")
    assert ann is not None and bob is not None
    with engine.begin() as conn:
        for member_id in (ann.id, bob.id):
            conn.execute(insert(Nudge).values(community_id=cid, member_id=member_id, group="nudged", decided_at=T0))
    return cid, ann.id, bob.id


def test_export_covers_every_member_data_table_with_only_that_members_rows(engine: Engine, store: IngestStore) -> None:
    cid, ann_id, bob_id = _seed_two_members(engine, store)
    document = export_member_data(engine, cid, "telegram", "ann", now=NOW)
    assert document is not None
    tables = document["tables"]
    assert isinstance(tables, dict)
    # The same tables the deletion path covers: a new member-data table shows up here without code changes.
    assert set(tables) == {t.name for t in member_data_tables()}
    member = document["member"]
    assert isinstance(member, dict) and member["id"] == ann_id and member["nudges_opt_out"] is False
    for name, section in tables.items():
        for row in section["rows"]:
            if "member_id" in row:
                assert row["member_id"] == ann_id, name
    counts = {name: len(section["rows"]) for name, section in tables.items()}
    assert counts["messages"] == 1
    assert counts["reactions"] == 1
    assert counts["membership_events"] == 1
    assert counts["purchases"] == 2
    assert counts["refunds"] == 1  # the refund of her own purchase, found through it
    assert counts["nudges"] == 1
    assert counts["member_daily_activity"] == 1
    assert counts["member_activity"] == 1
    assert counts["channel_member_daily"] == 1  # her messages per channel and day (the dashboard's channel figures)
    # Bob's rows that point at Ann are counted, not copied: their content is Bob's.
    assert tables["messages"]["referenced_by_others"] == {"reply_to_member_id": 1}
    assert tables["reactions"]["referenced_by_others"] == {"target_member_id": 1}
    assert tables["member_daily_activity"]["rows"][0]["reactions_received"] == 1
    assert {r["charge_id"] for r in tables["purchases"]["rows"]} == {"ch-ann-1", "ch-ann-2"}
    with engine.connect() as conn:
        bob_joins = conn.execute(select(MembershipEvent.id).where(MembershipEvent.member_id == bob_id)).scalars().all()
    assert not {r["id"] for r in tables["membership_events"]["rows"]} & set(bob_joins)


def test_export_includes_text_only_when_stored(engine: Engine) -> None:
    store = IngestStore(engine, store_text=True)
    store.register_community(COMMUNITY, "Europe/Berlin")
    cid = store.community_id(COMMUNITY)
    store.write_batch([Events(Platform.TELEGRAM).message("ann", text="hello there", length=11)])
    document = export_member_data(engine, cid, "telegram", "ann", now=NOW)
    assert document is not None
    assert document["tables"]["messages"]["rows"][0]["text"] == "hello there"  # type: ignore[index]
    assert export_member_data(engine, cid, "telegram", "nobody", now=NOW) is None


def test_owned_courses_leave_out_refunded_purchases(engine: Engine, store: IngestStore) -> None:
    cid, _, _ = _seed_two_members(engine, store)
    assert [c.course_key for c in owned_courses(engine, cid, "telegram", "ann")] == ["rust-intro"]
    assert live_purchase(engine, cid, "telegram", "ann", "py-async") is None
    assert live_purchase(engine, cid, "telegram", "bob", "py-async") is not None
    assert owned_courses(engine, cid, "discord", "ann") == []  # the same id on another platform is someone else


def named(ev: Events, user: str, name: str, username: str | None = None, *, bot: bool = False) -> MessageEvent:
    message = ev.message(user, name=name, bot=bot)
    return replace(message, author=MemberRef(user, display_name=name, is_bot=bot, username=username))


def test_resolve_member_by_id_and_username_never_by_display_name(engine: Engine, store: IngestStore) -> None:
    cid = store.community_id(COMMUNITY)
    ev = Events(Platform.TELEGRAM)
    store.write_batch(
        [
            named(ev, "11", "Ann Lee", "ann_lee"),
            named(ev, "12", "bob"),  # renamed themself "bob" to pass for the real @bob
            named(ev, "13", "Robert", "bob"),
            named(ev, "14", "HelperBot", "helper_bot", bot=True),
        ]
    )
    assert resolve_member(engine, cid, "telegram", "@Ann_Lee").user_id == "11"
    assert resolve_member(engine, cid, "telegram", "@bob").user_id == "13"  # the handle, not the lookalike name
    assert resolve_member(engine, cid, "telegram", "11").known
    stranger = resolve_member(engine, cid, "telegram", "777")
    assert (stranger.user_id, stranger.known) == ("777", False)
    with pytest.raises(MemberLookupError, match="No member with the username @ann lee"):
        resolve_member(engine, cid, "telegram", "@ann lee")  # a display name never matches
    with pytest.raises(MemberLookupError, match="No member with the username @helper_bot"):
        resolve_member(engine, cid, "telegram", "@helper_bot")
    with pytest.raises(MemberLookupError, match="pick the member in the user option"):
        resolve_member(engine, cid, "discord", "@bob")


def test_a_username_that_changed_hands_is_ambiguous(engine: Engine, store: IngestStore) -> None:
    cid = store.community_id(COMMUNITY)
    ev = Events(Platform.TELEGRAM)
    store.write_batch([named(ev, "21", "Old Sam", "sam")])
    store.invalidate_caches()  # a restart in between: the writer learns the handle from the database again
    store.write_batch([named(ev, "22", "New Sam", "sam"), named(ev, "21", "Old Sam", "sam")])
    with pytest.raises(MemberLookupError) as refused:
        resolve_member(engine, cid, "telegram", "@sam")
    assert "Several members have had the username @sam: id 21 (Old Sam), id 22 (New Sam)" in str(refused.value)
    # Old Sam takes another handle: @sam now names New Sam only.
    store.write_batch([named(ev, "21", "Old Sam", "samuel")])
    assert resolve_member(engine, cid, "telegram", "@sam").user_id == "22"
    assert resolve_member(engine, cid, "telegram", "@samuel").user_id == "21"


def test_nudge_opt_out_creates_then_updates_the_member(engine: Engine, store: IngestStore) -> None:
    cid = store.community_id(COMMUNITY)
    created = set_nudges_opt_out(engine, cid, "telegram", "42", opt_out=True, now=NOW, display_name="Zed")
    assert created.nudges_opt_out and created.first_seen_at == NOW
    # The writer keeps working for the account afterwards (its member cache picks up the existing row).
    store.write_batch([Events(Platform.TELEGRAM).message("42", at=NOW + timedelta(hours=1))])
    again = set_nudges_opt_out(engine, cid, "telegram", "42", opt_out=False, now=NOW + timedelta(days=1))
    assert again.id == created.id and not again.nudges_opt_out and again.first_seen_at == NOW
    stats = member_stats(engine, cid, "telegram", "42", today=NOW.date())
    assert stats is not None and stats.messages_30d == 1
    with engine.connect() as conn:
        assert conn.execute(select(Member.id).where(Member.platform_user_id == "42")).scalars().all() == [created.id]


def test_member_stats_is_none_for_unknown_accounts(engine: Engine, store: IngestStore) -> None:
    cid = store.community_id(COMMUNITY)
    assert member_stats(engine, cid, "telegram", "nobody", today=datetime.now(UTC).date()) is None
