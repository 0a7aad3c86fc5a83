"""Property: whatever arrives, in whatever order and batching, rollups equal their recomputation from raw rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from storage.deletion import delete_member_data, find_member_id
from storage.ingest import IngestStore
from storage.models import Base
from storage.rollups import compute_rollups, read_rollups
from tests.conftest import COMMUNITY, T0, Events

pytestmark = [pytest.mark.storage, pytest.mark.slow]

USERS = ["u0", "u1", "u2", "u3", "robot"]  # "robot" is a bot account
MESSAGE_IDS = [f"m{i}" for i in range(8)]
# Up to ten days either side of midnight in Berlin, at millisecond precision; or within a day either side of the
# night Berlin's clocks went forward (2024-03-31, 02:00 -> 03:00), so that local hours cross a DST change.
DST_NIGHT = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
instants = st.one_of(
    st.integers(min_value=0, max_value=10 * 24 * 3600 * 1000).map(lambda ms: T0 + timedelta(milliseconds=ms)),
    st.integers(min_value=-24 * 3600 * 1000, max_value=24 * 3600 * 1000).map(
        lambda ms: DST_NIGHT + timedelta(milliseconds=ms)
    ),
)

message_op = st.tuples(
    st.just("message"),
    st.sampled_from(USERS),
    st.sampled_from(MESSAGE_IDS),
    instants,
    st.sampled_from([None, *USERS]),
    st.integers(min_value=0, max_value=3),  # reaction totals from a history export
)
reaction_op = st.tuples(
    st.just("reaction"),
    st.sampled_from(USERS),
    st.sampled_from(MESSAGE_IDS),
    instants,
    st.booleans(),  # added or removed
    st.sampled_from(["👍", "🎉"]),
    st.booleans(),  # the platform names the message author (Discord) or not (Telegram)
)
membership_op = st.tuples(st.sampled_from(["join", "leave"]), st.sampled_from(USERS), instants)
forget_op = st.tuples(st.just("forget"), st.sampled_from(USERS))
operations = st.lists(
    st.one_of(message_op, message_op, reaction_op, reaction_op, membership_op, forget_op),
    min_size=1,
    max_size=40,
)
batch_sizes = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=10)


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))


def _chat_of(message_id: str) -> str:
    return "general" if MESSAGE_IDS.index(message_id) % 2 == 0 else "help"


def _author_of(message_id: str) -> str:
    # Message ids are reused across examples on purpose (duplicates); tie each id to one author for realism.
    return USERS[MESSAGE_IDS.index(message_id) % len(USERS)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations, sizes=batch_sizes)
def test_rollups_equal_recomputation(engine: Engine, ops: list[tuple[object, ...]], sizes: list[int]) -> None:
    _reset(engine)
    store = IngestStore(engine)
    cid = store.register_community(COMMUNITY, "Europe/Berlin")
    ev = Events()
    pending: list[object] = []
    delivered: list[object] = []

    def flush() -> None:
        # Deliver what is pending in batches of the drawn sizes.
        i = 0
        delivered.extend(pending)
        while pending:
            size = sizes[i % len(sizes)]
            i += 1
            chunk, pending[:] = pending[:size], pending[size:]
            store.write_batch(chunk)  # type: ignore[arg-type]

    for op in ops:
        kind = op[0]
        if kind == "message":
            _, _user, message_id, at, reply_to, imported = op
            # Some messages are posted in a forum topic, which counts as its own channel, some in a second chat.
            topic = "7" if MESSAGE_IDS.index(str(message_id)) % 3 == 0 else None
            chat = _chat_of(str(message_id))
            author = _author_of(str(message_id))
            pending.append(
                ev.message(  # type: ignore[arg-type]
                    author,
                    message_id=str(message_id),
                    at=at,
                    reply_to_user=reply_to,
                    bot=author == "robot",
                    channel=chat,
                    thread=topic,
                    imported_reactions=int(imported),  # type: ignore[call-overload]
                )
            )
        elif kind == "reaction":
            _, user, message_id, at, added, emoji, names_author = op
            author = _author_of(str(message_id)) if names_author else None
            pending.append(
                ev.reaction(
                    str(user),
                    str(message_id),
                    at=at,
                    added=bool(added),
                    emoji=str(emoji),
                    author=author,
                    channel=_chat_of(str(message_id)),
                )
            )  # type: ignore[arg-type]
        elif kind in ("join", "leave"):
            _, user, at = op
            pending.append(ev.join(str(user), at=at) if kind == "join" else ev.leave(str(user), at=at))  # type: ignore[arg-type]
        else:
            flush()
            with engine.begin() as conn:
                member_id = find_member_id(conn, cid, "discord", str(op[1]))
                if member_id is not None:
                    delete_member_data(conn, member_id)
            store.invalidate_caches()
    flush()
    with engine.connect() as conn:
        stored = read_rollups(conn, cid)
        assert stored == compute_rollups(conn, cid)
    if not any(op[0] == "forget" for op in ops):
        # A full redelivery (a reconnect replaying history) changes nothing.
        store.write_batch(delivered)  # type: ignore[arg-type]
        with engine.connect() as conn:
            assert read_rollups(conn, cid) == stored
