"""Whole batches on both backends: any text survives, a batch larger than one statement's old limit is stored once.

On PostgreSQL a batch's rows and rollups travel as one array per column (storage/pg_rows.py, storage/pg_rollups.py);
these check what a member or owner would see of that: the exact text and names, each event once, rollups equal to a
recount.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from storage.ingest import IngestStore
from storage.models import Member, MemberActivity, Message
from storage.rollups import compute_rollups, read_rollups
from tests.conftest import COMMUNITY, T0, Events

pytestmark = pytest.mark.storage

AWKWARD = [
    'a "quoted", {braced} value',
    "back\\slash and \\N and \\\\",
    "NULL",
    "",
    "line one\nline two\ttabbed",
    "emoji 👍🏽 and ünïcödé and 中文",
    "(1,2),{3}",
]


def test_awkward_text_and_names_are_stored_exactly(engine: Engine, ev: Events) -> None:
    store = IngestStore(engine, store_text=True)
    store.register_community(COMMUNITY, "UTC")
    events = [
        ev.message(f"user-{i}", text=text, name=text or "nameless", message_id=f"m{i}", at=T0 + timedelta(seconds=i))
        for i, text in enumerate(AWKWARD)
    ]
    events.append(ev.message("quiet", text=None, message_id="none"))
    result = store.write_batch(events)
    assert result.messages == len(events)
    with engine.connect() as conn:
        texts = dict(conn.execute(select(Message.platform_message_id, Message.text)).all())
        names = dict(conn.execute(select(Member.platform_user_id, Member.display_name)).all())
    assert texts == {**{f"m{i}": text for i, text in enumerate(AWKWARD)}, "none": None}
    assert names == {**{f"user-{i}": text or "nameless" for i, text in enumerate(AWKWARD)}, "quiet": "Quiet"}


def test_a_batch_of_thousands_is_stored_once_with_its_rollups(store: IngestStore, ev: Events) -> None:
    # 2,600 events by 700 accounts (more rows than one statement held before), with repeats inside the batch.
    events = [
        ev.message(
            f"u{i % 700}",
            message_id=f"m{i}",
            at=T0 + timedelta(minutes=i),
            reply_to_user=f"u{(i + 1) % 700}" if i % 3 == 0 else None,
            channel=f"c{i % 7}",
            bot=i % 700 == 5,
        )
        for i in range(2_500)
    ]
    events += events[:100]
    first = store.write_batch(events)
    assert (first.messages, first.duplicates) == (2_500, 100)
    again = store.write_batch(events)
    assert (again.messages, again.duplicates) == (0, 2_600)
    cid = store.community_id(COMMUNITY)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 2_500
        # u5 is a bot: its 4 messages (5, 705, 1405, 2105) are stored but not counted.
        assert conn.execute(select(func.sum(MemberActivity.messages))).scalar_one() == 2_500 - 4
        assert read_rollups(conn, cid) == compute_rollups(conn, cid)
