"""Schema migrations and connection setup, on SQLite and PostgreSQL."""

from __future__ import annotations

import pprint
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, column, inspect, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from storage.catalog import CourseRecord, sync_courses
from storage.digests import claim_digest, latest_sent_digest, mark_digest_sent
from storage.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine, normalise_url, writing
from storage.ingest import IngestStore
from storage.migrate import alembic_config, current_revision, head_revision, upgrade
from storage.models import Base
from storage.types import UTCDateTime
from tests.conftest import COMMUNITY, T0, Events


@pytest.fixture
def empty_engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of the backend (nothing migrated yet)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def schema_snapshot(engine: Engine) -> dict[str, list[str]]:
    insp = inspect(engine)
    return {table: sorted(col["name"] for col in insp.get_columns(table)) for table in insp.get_table_names()}


@pytest.mark.storage
def test_upgrading_an_empty_database_reaches_head(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    assert inspect(empty_engine).get_table_names() == []
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    model_tables = set(Base.metadata.tables)
    assert model_tables <= set(inspect(empty_engine).get_table_names())


@pytest.mark.storage
def test_upgrading_twice_is_a_no_op(empty_engine: Engine, ev: Events) -> None:
    upgrade(empty_engine)
    store = IngestStore(empty_engine)
    store.register_community(COMMUNITY, "Europe/Berlin")
    store.write_batch([ev.message("alice", at=T0), ev.message("bob", at=T0)])
    schema = schema_snapshot(empty_engine)

    upgrade(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert schema_snapshot(empty_engine) == schema
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 2
        assert conn.execute(text("SELECT name FROM communities")).scalars().all() == [COMMUNITY]


def record_old_purchase(engine: Engine, community_id: int, user: str, charge: str) -> None:
    """A member and a purchase stored with only the columns every revision since 0001 has (today's writer would
    fill columns an old database does not have yet)."""
    members = table(
        "members",
        column("community_id"),
        column("platform"),
        column("platform_user_id"),
        column("is_bot"),
        column("first_seen_at", UTCDateTime()),
        column("nudges_opt_out"),
        column("leaderboard_opt_out"),
    )
    purchases = table(
        "purchases",
        column("community_id"),
        column("member_id"),
        column("course_id"),
        column("platform"),
        column("charge_id"),
        column("source"),
        column("amount"),
        column("currency"),
        column("purchased_at", UTCDateTime()),
    )
    with engine.begin() as conn:
        conn.execute(
            members.insert().values(
                community_id=community_id,
                platform="telegram",
                platform_user_id=user,
                is_bot=False,
                first_seen_at=T0,
                nudges_opt_out=False,
                leaderboard_opt_out=False,
            )
        )
        member_id = conn.execute(text("SELECT id FROM members WHERE platform_user_id = :u"), {"u": user}).scalar_one()
        course_id = conn.execute(text("SELECT id FROM courses")).scalar_one()
        conn.execute(
            purchases.insert().values(
                community_id=community_id,
                member_id=member_id,
                course_id=course_id,
                platform="telegram",
                charge_id=charge,
                source="telegram_stars",
                amount=500,
                currency="XTR",
                purchased_at=T0,
            )
        )


@pytest.mark.storage
def test_0004_upgrades_old_purchases_and_downgrades_cleanly(empty_engine: Engine) -> None:
    # An existing sale stays real revenue with open-ended access; going back to 0003 and forward again works.
    upgrade(empty_engine, "0003")
    community_id = IngestStore(empty_engine).register_community(COMMUNITY, "Europe/Berlin")
    sync_courses(empty_engine, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    record_old_purchase(empty_engine, community_id, "alice", "ch-old")
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        row = conn.execute(text("SELECT is_test, access_ends_at FROM purchases")).one()
        assert (bool(row[0]), row[1]) == (False, None)
        assert conn.execute(text("SELECT username FROM members")).scalar_one() is None
    config = alembic_config(empty_engine)
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    assert current_revision(empty_engine) == "0003"
    tables = set(inspect(empty_engine).get_table_names())
    assert "unmatched_payments" not in tables
    assert "is_test" not in {c["name"] for c in inspect(empty_engine).get_columns("purchases")}
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT charge_id FROM purchases")).scalar_one() == "ch-old"
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()


@pytest.mark.storage
def test_0005_keeps_digests_sent_before_it_without_text_and_downgrades_cleanly(empty_engine: Engine) -> None:
    # A digest sent by an older version has no stored text; one sent after 0005 keeps it; 0004 drops only the text.
    upgrade(empty_engine, "0004")
    community_id = IngestStore(empty_engine).register_community(COMMUNITY, "Europe/Berlin")
    old_digests = table(
        "digests",
        column("community_id"),
        column("week"),
        column("claimed_at", UTCDateTime()),
        column("sent_at", UTCDateTime()),
        column("late"),
    )
    with empty_engine.begin() as conn:
        conn.execute(
            old_digests.insert().values(
                community_id=community_id, week="2024-W09", claimed_at=T0, sent_at=T0, late=False
            )
        )
    upgrade(empty_engine)
    old = latest_sent_digest(empty_engine, community_id)
    assert old is not None and (old.week, old.sent_at, old.owner_text) == ("2024-W09", T0, None)
    later = T0 + timedelta(days=7)
    assert claim_digest(empty_engine, community_id, "2024-W10", now=later, late=False, claimed_by="test")
    mark_digest_sent(empty_engine, community_id, "2024-W10", now=later, owner_text="PyCraft: week 2024-W10")
    new = latest_sent_digest(empty_engine, community_id)
    assert new is not None and (new.week, new.owner_text) == ("2024-W10", "PyCraft: week 2024-W10")

    config = alembic_config(empty_engine)
    with empty_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert current_revision(empty_engine) == "0004"
    assert "owner_text" not in {c["name"] for c in inspect(empty_engine).get_columns("digests")}
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT week FROM digests ORDER BY week")).scalars().all() == ["2024-W09", "2024-W10"]
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()


@pytest.mark.storage
def test_purchases_recorded_before_0003_count_as_granted(empty_engine: Engine, ev: Events) -> None:
    # Older versions gave access when they recorded a sale, so upgrading must not make a redelivery grant again.
    upgrade(empty_engine, "0002")
    store = IngestStore(empty_engine)
    community_id = store.register_community(COMMUNITY, "Europe/Berlin")
    sync_courses(empty_engine, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    record_old_purchase(empty_engine, community_id, "alice", "ch-old")
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT access_granted_at = purchased_at FROM purchases")).scalar_one()


@pytest.mark.storage
def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "the migrations and storage/models.py disagree:\n" + pprint.pformat(diff)


@pytest.mark.storage
def test_foreign_keys_are_enforced(engine: Engine) -> None:
    # A message whose channel and member do not exist must be refused, on SQLite too (PRAGMA foreign_keys).
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO messages (channel_id, platform_message_id, member_id, created_at, length, "
                "has_code, has_link, is_reply, attachments) "
                "VALUES (999, 'm1', 999, :at, 1, false, false, false, 0)"
            ),
            {"at": T0 if engine.dialect.name != "sqlite" else 0},
        )


# --- SQLite connection settings ---


def sqlite_pragmas(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }


def test_sqlite_file_connections_have_the_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")
    try:
        expected = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": 1}
        assert SQLITE_BUSY_TIMEOUT_MS == 10000
        # Every connection, not only the first: pragmas other than journal_mode are per connection.
        assert sqlite_pragmas(engine) == expected
        assert sqlite_pragmas(engine) == expected
    finally:
        engine.dispose()


def test_sqlite_file_in_a_missing_folder_is_created(tmp_path: Path) -> None:
    database = tmp_path / "deep" / "er" / "cohortbot.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    assert database.is_file()


def test_sqlite_writers_take_the_lock_when_they_begin_and_readers_never_wait(tmp_path: Path) -> None:
    # A writing transaction takes the write lock at BEGIN, so a second writer is turned away (after its busy
    # timeout) before doing any work, while readers carry on reading (WAL).
    url = f"sqlite:///{tmp_path}/locks.db"
    first, second = make_engine(url), make_engine(url)
    try:
        with writing(first).begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with writing(first).connect() as holder, writing(second).connect() as other:
            other.exec_driver_sql("PRAGMA busy_timeout=50")  # fail fast instead of waiting 10 s
            other.commit()
            holder.begin()
            holder.exec_driver_sql("INSERT INTO t VALUES (2)")
            with pytest.raises(OperationalError, match="locked"):
                other.begin()
            other.rollback()
            with second.connect() as reader:
                assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
            holder.commit()
        with second.connect() as reader:
            assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 2
    finally:
        first.dispose()
        second.dispose()


# --- URLs ---


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u:p%40ss@h:5433/db?sslmode=require", "postgresql+psycopg://u:p%40ss@h:5433/db?sslmode=require"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///cohortbot.db", "sqlite:///cohortbot.db"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_postgresql_url_keeps_its_password() -> None:
    url = make_url(normalise_url("postgresql://bob:s3cret@db.example.com/cohortbot"))
    assert (url.drivername, url.password, url.host, url.database) == (
        "postgresql+psycopg",
        "s3cret",
        "db.example.com",
        "cohortbot",
    )


def test_postgresql_engine_uses_psycopg() -> None:
    engine = make_engine("postgresql://u@127.0.0.1:1/db")  # never connects
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()
