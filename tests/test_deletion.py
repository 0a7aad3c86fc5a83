"""One deletion path removes everything stored about a member, and no member-data table escapes it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, ForeignKey, Integer, MetaData, String, Table, func, insert, inspect, select

from bot.cli import main
from storage.catalog import CourseRecord, sync_courses
from storage.deletion import FORGOTTEN, delete_member_data, find_member_id, member_columns
from storage.events import Platform, RefundEvent
from storage.ingest import IngestStore
from storage.models import Base, CommunityDailyTotals, Digest, JobRun, Member, Message, Nudge, Purchase, Refund
from storage.rollups import compute_rollups, read_rollups
from tests.conftest import COMMUNITY, T0, Events, hours

pytestmark = pytest.mark.storage


def member_references(engine: Engine, member_id: int) -> dict[str, int]:
    """Rows in any table, through any column pointing at members, that still name this member."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if any(fk.column.table.name == "members" for fk in c.foreign_keys)]
            if table.name == "members":
                columns = [table.c.id]
            for column in columns:
                n = conn.execute(select(func.count()).select_from(table).where(column == member_id)).scalar_one()
                if n:
                    found[f"{table.name}.{column.name}"] = n
    return found


@pytest.fixture
def populated(store: IngestStore, ev: Events) -> IngestStore:
    """Alice has done everything a member can do; Bob and an admin interacted with her."""
    cid = store.community_id(COMMUNITY)
    sync_courses(store.engine, cid, [CourseRecord("py-async", "Async Python", price_stars=500)])
    store.write_batch(
        [
            ev.join("alice", at=T0 - timedelta(days=3)),
            ev.message("alice", message_id="a1", at=T0),
            ev.message("alice", message_id="a2", at=T0 + hours(30), reply_to_user="bob"),
            ev.message("bob", message_id="b1", at=T0 + hours(1), reply_to_user="alice"),
            ev.reaction("bob", "a1", at=T0 + hours(2)),
            ev.reaction("alice", "b1", at=T0 + hours(3)),
            ev.leave("alice", at=T0 + timedelta(days=5)),
        ]
    )
    store.record_purchase(ev.purchase("alice", charge="sale-1"))
    store.record_refund(RefundEvent(Platform.DISCORD, COMMUNITY, "sale-1", T0 + hours(4), refunded_by="admin"))
    purchase = ev.purchase("bob", charge="sale-2")
    store.record_purchase(purchase)
    with store.engine.begin() as conn:
        alice = find_member_id(conn, cid, "discord", "alice")
        conn.execute(insert(Nudge).values(community_id=cid, member_id=alice, group="nudged", decided_at=T0))
    return store


def test_forgetting_a_member_leaves_nothing_that_names_them(populated: IngestStore) -> None:
    cid = populated.community_id(COMMUNITY)
    with populated.engine.connect() as conn:
        alice = find_member_id(conn, cid, "discord", "alice")
    assert alice is not None
    before = member_references(populated.engine, alice)
    assert {
        "messages.member_id",
        "reactions.member_id",
        "membership_events.member_id",
        "nudges.member_id",
    } <= set(before)

    with populated.engine.begin() as conn:
        report = delete_member_data(conn, alice)

    assert member_references(populated.engine, alice) == {}
    assert report.deleted["messages"] == 2 and report.deleted["members"] == 1
    assert report.detached["purchases"] == 1
    with populated.engine.connect() as conn:
        # The sale stays for accounting, without the person; the refund still points at it.
        sale = conn.execute(select(Purchase.member_id, Purchase.charge_id).where(Purchase.charge_id == "sale-1")).one()
        assert tuple(sale) == (None, "sale-1")
        assert conn.execute(select(func.count()).select_from(Refund)).scalar_one() == 1
        # Bob's reply to Alice stays, as his message, answering nobody in particular.
        reply = conn.execute(select(Message.reply_to_member_id).where(Message.platform_message_id == "b1")).one()
        assert reply[0] is None
        # Community totals no longer count her messages: only Bob's message and reaction remain.
        totals = conn.execute(
            select(func.sum(CommunityDailyTotals.messages), func.sum(CommunityDailyTotals.reactions))
        ).one()
        assert tuple(totals) == (1, 1)
        assert read_rollups(conn, cid) == compute_rollups(conn, cid)


def test_forgotten_member_does_not_disturb_others(populated: IngestStore) -> None:
    cid = populated.community_id(COMMUNITY)
    with populated.engine.connect() as conn:
        alice = find_member_id(conn, cid, "discord", "alice")
        bob = find_member_id(conn, cid, "discord", "bob")
    assert alice is not None and bob is not None
    own = ("messages.member_id", "reactions.member_id", "purchases.member_id", "members.id")
    bob_before = {k: v for k, v in member_references(populated.engine, bob).items() if k in own}
    with populated.engine.begin() as conn:
        delete_member_data(conn, alice)
    # Bob keeps every message, reaction and purchase of his; only Alice's rows that pointed at him are gone.
    bob_after = member_references(populated.engine, bob)
    assert {k: v for k, v in bob_after.items() if k in own} == bob_before
    assert "messages.reply_to_member_id" not in bob_after  # Alice's reply to him went with her messages


def test_every_table_that_references_members_declares_how_it_is_deleted() -> None:
    for table in Base.metadata.sorted_tables:
        member_columns(table)  # raises for a table that references members without a policy


def test_a_new_member_table_without_a_policy_is_caught() -> None:
    metadata = MetaData()
    Table("members", metadata, Column("id", Integer, primary_key=True))
    careless = Table(
        "badges",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("member_id", ForeignKey("members.id")),
    )
    with pytest.raises(ValueError, match="badges"):
        member_columns(careless)


def test_no_table_names_a_member_without_a_foreign_key() -> None:
    """A column that holds a member id but is not a foreign key would escape the deletion path."""
    suspicious = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            looks_like_member = column.name.endswith("member_id") or column.name in (
                "user_id",
                "platform_user_id",
            )
            # Dashboard logins and sessions name an admin by platform identity; forgetting that identity deletes
            # them (``admin_data``), which tests/web checks.
            by_identity = table.info.get("admin_data") == "delete"
            if looks_like_member and not column.foreign_keys and table.name != "members" and not by_identity:
                suspicious.append(f"{table.name}.{column.name}")
    assert suspicious == []


def test_forgetting_someone_never_seen_changes_nothing(populated: IngestStore) -> None:
    with populated.engine.begin() as conn:
        report = delete_member_data(conn, 987654)
        assert report.deleted == {} and report.detached == {}
        assert conn.execute(select(func.count()).select_from(Member)).scalar_one() == 3


# --- free text: no id or name of theirs left in any text column of any table ---

ALICE_ID = "784512963"
ALICE_NAME = "Alice Liddell"
# The owners' digest as sent, kept to be shown again: it names members at risk.
DIGEST_AS_SENT = "PyCraft: week 2024-W10\nMessages: 3\nAt risk (2): {name}, Bob"


def text_values_naming(engine: Engine, *needles: str) -> list[str]:
    """Every text value, in every column of every table the database has, that contains one of the needles."""
    found = []
    inspector = inspect(engine)
    with engine.connect() as conn:
        for table_name in inspector.get_table_names():
            table = Table(table_name, MetaData(), autoload_with=conn)
            for column in table.columns:
                if not isinstance(column.type, String):
                    continue
                for value in conn.execute(select(column).where(column.is_not(None))).scalars():
                    if any(needle.lower() in str(value).lower() for needle in needles):
                        found.append(f"{table_name}.{column.name}: {value!r}")
    return found


@pytest.fixture
def quoted(engine: Engine) -> IngestStore:
    """Alice (Discord id 784512963) is named in free text all over the database, by others and by the bot."""
    store = IngestStore(engine, store_text=True)
    store.register_community(COMMUNITY, "Europe/Berlin")
    ev = Events()
    cid = store.community_id(COMMUNITY)
    sync_courses(engine, cid, [CourseRecord("py-async", "Async Python", price_stars=500)])
    store.write_batch(
        [
            ev.message(ALICE_ID, name=ALICE_NAME, message_id="a1", at=T0, text="hi, I am Alice"),
            ev.message(
                "bob", name="Bob", message_id="b1", at=T0 + hours(1), text=f"thanks {ALICE_NAME}, see <@{ALICE_ID}>!"
            ),
            ev.message("bob", name="Bob", message_id="b2", at=T0 + hours(2), text="ALICE LIDDELL's notes, page 845129"),
        ]
    )
    store.record_purchase(ev.purchase("bob", charge="sale-b"))
    reason = f"bought for alice liddell ({ALICE_ID})"
    store.record_refund(RefundEvent(Platform.DISCORD, COMMUNITY, "sale-b", T0 + hours(4), reason=reason))
    with engine.begin() as conn:
        alice = find_member_id(conn, cid, "discord", ALICE_ID)
        bob = find_member_id(conn, cid, "discord", "bob")
        conn.execute(insert(Nudge).values(community_id=cid, member_id=alice, group="nudged", decided_at=T0))
        conn.execute(
            insert(Nudge).values(
                community_id=cid, member_id=bob, group="nudged", decided_at=T0, error=f"sent after {ALICE_NAME}'s"
            )
        )
        conn.execute(
            insert(JobRun).values(
                community_id=cid,
                job="nudges",
                started_at=T0,
                finished_at=T0,
                outcome="failed",
                detail=f"nudged 1 of 2; failed: {ALICE_NAME} ({ALICE_ID}): Forbidden: bot was blocked by the user",
            )
        )
        conn.execute(
            insert(Digest).values(
                community_id=cid,
                week="2024-W10",
                claimed_at=T0,
                claimed_by=f"dm-{ALICE_ID}",
                sent_at=T0,
                owner_text=DIGEST_AS_SENT.format(name=ALICE_NAME),
            )
        )
    return store


def test_forgetting_a_member_leaves_their_id_and_name_in_no_text_column(quoted: IngestStore) -> None:
    engine = quoted.engine
    cid = quoted.community_id(COMMUNITY)
    assert len(text_values_naming(engine, ALICE_ID, ALICE_NAME)) >= 7  # the scan sees them before
    with engine.begin() as conn:
        alice = find_member_id(conn, cid, "discord", ALICE_ID)
        assert alice is not None
        report = delete_member_data(conn, alice)

    assert text_values_naming(engine, ALICE_ID, ALICE_NAME) == []
    # Values changed per table: the digest row names her twice (who claimed it, and the owners' text as sent).
    assert report.scrubbed == {"digests": 2, "job_runs": 1, "messages": 2, "nudges": 1, "refunds": 1}
    with engine.connect() as conn:
        # What is kept still reads, with the person taken out; other words and numbers are untouched.
        texts = conn.execute(select(Message.text).order_by(Message.platform_message_id)).scalars().all()
        assert texts == ["thanks [forgotten], see <@[forgotten]>!", "[forgotten]'s notes, page 845129"]
        detail = conn.execute(select(JobRun.detail)).scalar_one()
        assert detail == "nudged 1 of 2; failed: [forgotten] ([forgotten]): Forbidden: bot was blocked by the user"
        assert conn.execute(select(Refund.reason)).scalar_one() == "bought for [forgotten] ([forgotten])"
        assert conn.execute(select(Nudge.error)).scalar_one() == "sent after [forgotten]'s"
        assert conn.execute(select(Digest.owner_text)).scalar_one() == DIGEST_AS_SENT.format(name=FORGOTTEN)


def test_a_name_that_is_also_a_key_or_a_word_of_the_schema_damages_nothing(store: IngestStore, ev: Events) -> None:
    # A member who calls themself "discord" with the id "nudged": other rows' platform and group stay.
    cid = store.community_id(COMMUNITY)
    store.write_batch(
        [ev.message("nudged", name="discord", message_id="x1"), ev.message("bob", message_id="b1", at=T0 + hours(1))]
    )
    with store.engine.begin() as conn:
        bob = find_member_id(conn, cid, "discord", "bob")
        conn.execute(insert(Nudge).values(community_id=cid, member_id=bob, group="nudged", decided_at=T0))
        victim = find_member_id(conn, cid, "discord", "nudged")
        assert victim is not None
        report = delete_member_data(conn, victim)
    assert report.scrubbed == {}
    with store.engine.connect() as conn:
        assert conn.execute(select(Member.platform, Member.platform_user_id)).all() == [("discord", "bob")]
        assert conn.execute(select(Nudge.group)).scalar_one() == "nudged"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``main()`` configures the root logger; put it back for the tests that follow."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)


@pytest.mark.usefixtures("restore_logging")
def test_cohortbot_forget_scrubs_the_free_text_too(
    quoted: IngestStore, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[community]\nname = "{COMMUNITY}"\ntimezone = "Europe/Berlin"\n\n[storage]\nurl = {json.dumps(db_url)}\n',
        encoding="utf-8",
    )
    assert main(["forget", "--config", str(config), "--platform", "discord", "--user", ALICE_ID, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "their id and name taken out of text elsewhere: digests: 2, job_runs: 1, messages: 2" in out
    assert text_values_naming(quoted.engine, ALICE_ID, ALICE_NAME) == []
