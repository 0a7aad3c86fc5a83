"""``cohortbot db backup``, ``db verify`` and ``db copy``: what an operator runs to keep a community's data for years.

Real databases throughout: a SQLite file a real bot process writes to while it is backed up, the local PostgreSQL
server (a database created per test and dropped afterwards) for the copy, and the Komodo export slice as the
community that is moved.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from bot.cli import main
from storage.catalog import CourseRecord, sync_courses
from storage.engine import make_engine, normalise_url
from storage.ingest import IngestStore
from storage.migrate import upgrade
from tests.cli.test_cli import clean_environment, write_config  # noqa: F401  (autouse: empty folder, no env)
from tests.conftest import COMMUNITY, T0, Events, hours, postgres_url, require_backend

ROOT = Path(__file__).resolve().parents[2]
KOMODO = ROOT / "tests" / "fixtures" / "komodo-discord-dce"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sqlite_file(tmp_path: Path, name: str = "cohortbot.db") -> tuple[str, Path]:
    path = tmp_path / name
    return f"sqlite:///{path}", path


# --- backup -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_backup_taken_while_the_bot_writes_is_a_sound_prefix_of_its_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = sqlite_file(tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    config = write_config(tmp_path / "cohortbot.toml", url)
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.writer_process", url, "purchases"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        reported = [writer.stdout.readline().split()[1] for _ in range(30)]
        assert reported[-1] == "charge-29", writer.stderr.read() if writer.stderr else ""
        backup = tmp_path / "backups" / "cohortbot-backup.db"
        code, out, err = cli(capsys, "db", "backup", str(backup), "--config", str(config))
        assert writer.poll() is None  # the bot was writing all along ...
        after = [writer.stdout.readline().split()[1] for _ in range(5)]  # ... and goes on: the backup blocked nothing
        assert all(int(c.split("-")[1]) >= 30 for c in after)
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert code == 0, err
    assert f"to {backup}:" in out and "KiB" in out
    assert not list(backup.parent.glob(".*partial"))  # no temporary file left beside it
    copy = sqlite3.connect(backup)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        charges = {r[0] for r in copy.execute("SELECT charge_id FROM purchases")}
        messages = {int(r[0]) for r in copy.execute("SELECT platform_message_id FROM messages")}
        printed = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out.splitlines()[1:]}
    finally:
        copy.close()
    # Every sale the bot had reported stored is in the copy, and the copy is a prefix: no gap, nothing half-written.
    assert set(reported) <= charges
    assert charges == {f"charge-{i}" for i in range(len(charges))}
    assert messages == set(range(len(messages)))
    assert printed["purchases"] == len(charges) and printed["messages"] == len(messages)


def test_backup_refuses_to_overwrite_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = sqlite_file(tmp_path)
    config = write_config(tmp_path / "cohortbot.toml", url)
    assert cli(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    backup = tmp_path / "old-backup.db"
    backup.write_bytes(b"last week's backup")
    code, _, err = cli(capsys, "db", "backup", str(backup), "--config", str(config))
    assert code == 2
    assert err == f"cohortbot: {backup} exists; pass --force to replace it\n"
    assert backup.read_bytes() == b"last week's backup"
    code, _out, err = cli(capsys, "db", "backup", str(backup), "--force", "--config", str(config))
    assert code == 0, err
    # Not even --force replaces the live database with a copy of itself.
    live = tmp_path / "cohortbot.db"
    before = live.stat().st_ino
    code, _out, err = cli(capsys, "db", "backup", str(live), "--force", "--config", str(config))
    assert code == 2
    assert err == f"cohortbot: {live} is the database itself; back it up to another file\n"
    assert live.stat().st_ino == before
    with sqlite3.connect(backup) as copy:
        assert copy.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_backup_of_a_postgresql_database_explains_pg_dump_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "cohortbot.toml", "postgresql://bot:hunter2@db.example.net:5433/community")
    code, out, err = cli(capsys, "db", "backup", "nightly.dump", "--config", str(config))
    assert code == 1
    assert "pg_dump --format=custom --file=nightly.dump postgresql://bot@db.example.net:5433/community" in err
    assert "pg_restore" in err and "Nothing was written." in err
    assert "hunter2" not in out + err
    assert not (tmp_path / "nightly.dump").exists()


# --- verify -----------------------------------------------------------------------------------------------------


@pytest.mark.storage
def test_verify_passes_a_sound_database_and_names_a_tampered_rollup_table(
    store: IngestStore, engine: Engine, db_url: str, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ev = Events()
    store.write_batch(
        [
            ev.join("alice"),
            ev.message("alice", at=T0),
            ev.message("bob", at=T0 + hours(2), reply_to_user="alice"),
            ev.reaction("alice", "1000", at=T0 + hours(3), author="alice"),
        ]
    )
    config = write_config(tmp_path / "cohortbot.toml", db_url)
    code, out, err = cli(capsys, "db", "verify", "--config", str(config))
    assert code == 0, out + err
    assert "rollups: equal to a rebuild from raw events (1 community)" in out
    assert "the database is sound" in out
    if backend == "sqlite":
        assert "integrity_check: ok" in out and "foreign_key_check: ok" in out
    else:
        assert "skipped" in out

    with engine.begin() as conn:  # a hand edit, or a bug in the incremental path
        conn.execute(text("UPDATE member_daily_activity SET messages = messages + 5"))
    code, out, err = cli(capsys, "db", "verify", "--config", str(config))
    assert code == 1
    failures = [line for line in out.splitlines() if "FAIL" in line]
    assert len(failures) == 1
    assert "member_daily_activity differs from a rebuild from raw events" in failures[0]
    assert "(2 of 2 rows; stored 2 rows, rebuild 2)" in failures[0]
    assert "2024-03-04) stored (6, 0, 1, 0), rebuild (1, 0, 1, 0)" in failures[0]  # alice's day: 1 message, not 6
    assert "cohortbot db rebuild-rollups" in failures[0]
    assert "1 problem found" in out

    # The fix the line names works.
    assert cli(capsys, "db", "rebuild-rollups", "--config", str(config))[0] == 0
    assert cli(capsys, "db", "verify", "--config", str(config))[0] == 0


def test_verify_says_a_damaged_sqlite_file_is_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, path = sqlite_file(tmp_path)
    path.write_bytes(b"this was cohortbot.db until the disk went bad " * 200)
    config = write_config(tmp_path / "cohortbot.toml", url)
    code, _out, err = cli(capsys, "db", "verify", "--config", str(config))
    assert code == 1
    assert err.startswith(f"cohortbot: {url}: cannot read the file")
    assert "file is not a database" in err and "damaged" in err and "restore the last backup" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("offset", "scribble", "finding"),
    [
        (200, b"\x00" * 1000, "on tree page"),  # cells of a table page zeroed: the check lists where
        (0, b"\xff" * 4096 * 3, "database disk image is malformed"),  # pages too broken to walk
    ],
    ids=["cells", "pages"],
)
def test_verify_reports_damage_inside_a_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offset: int, scribble: bytes, finding: str
) -> None:
    url, path = sqlite_file(tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "Europe/Berlin")
    ev = Events()
    store.write_batch([ev.message(f"u{i % 40}", at=T0 + hours(i % 300)) for i in range(4000)])
    engine.dispose()  # the last connection checkpoints the WAL into the file
    with sqlite3.connect(path) as conn:  # a page that holds messages (dbstat: SQLite's page map)
        page = conn.execute("SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf'").fetchall()[5][0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as fh:  # a disk that went bad there
        fh.seek((page - 1) * page_size + offset)
        fh.write(scribble)
    config = write_config(tmp_path / "cohortbot.toml", url)
    code, out, err = cli(capsys, "db", "verify", "--config", str(config))
    assert code == 1, out
    assert err == ""
    failures = [line for line in out.splitlines() if "FAIL" in line]
    assert len(failures) == 1
    assert failures[0].startswith("  FAIL  integrity_check: the file is damaged")
    assert finding in failures[0].lower() and "restore the last backup" in failures[0]
    assert "rollups" not in out  # nothing is read from a damaged file beyond the check


# --- copy to PostgreSQL ------------------------------------------------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    require_backend("postgresql")
    server = make_url(normalise_url(postgres_url()))
    name = f"cohortbot_copy_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server.render_as_string(hide_password=False)).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _komodo_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """The Komodo slice imported into SQLite, plus a join, a leave, a reaction and a course sale."""
    url, _ = sqlite_file(tmp_path, "komodo.db")
    config = tmp_path / "cohortbot.toml"
    config.write_text(
        '[community]\nname = "komodo"\ntimezone = "Europe/Berlin"\n\n'
        f"[storage]\nurl = {json.dumps(url)}\n\n"
        '[[courses]]\nid = "py-async"\ntitle = "Async Python"\nprice_stars = 500\n',
        encoding="utf-8",
    )
    assert cli(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    code, _, err = cli(capsys, "import", "discord-export", str(KOMODO), "--config", str(config))
    assert code == 0, err
    engine = make_engine(url)
    store = IngestStore(engine)
    store.register_community("komodo", "Europe/Berlin")
    ev = Events(community="komodo")
    at = T0.replace(year=2019, month=12, day=10)
    store.write_batch(
        [
            ev.join("newcomer", at=at),
            ev.message("newcomer", at=at + hours(1), message_id="9001"),
            ev.reaction("oldtimer", "9001", at=at + hours(2), author="newcomer"),
            ev.leave("newcomer", at=at + hours(30)),
        ]
    )
    sync_courses(engine, store.community_id("komodo"), [CourseRecord("py-async", "Async Python", price_stars=500)])
    store.record_purchase(ev.purchase("newcomer", "py-async", at=at + hours(3)))
    engine.dispose()
    return config, url


def _report_json(capsys: pytest.CaptureFixture[str], config: Path) -> object:
    code, out, err = cli(
        capsys, "report", "--format", "json", "--as-of", "2019-12-13", "--weeks", "30", "--config", str(config)
    )
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow
def test_copy_moves_a_sqlite_community_to_postgresql_with_the_same_report(
    tmp_path: Path, pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, sqlite_url = _komodo_on_sqlite(tmp_path, capsys)
    with_password = pg_database.replace("postgres@", "postgres:hunter2@")  # the local server trusts, ignores it
    code, out, err = cli(capsys, "db", "copy", "--to", with_password, "--config", str(config))
    assert code == 0, err
    assert "hunter2" not in out + err
    assert "row counts match, and the rollups on PostgreSQL equal a rebuild" in out
    assert f'set [storage] url = "{pg_database}"' in out

    source, target = make_engine(sqlite_url), make_engine(pg_database)
    try:
        tables = ["communities", "channels", "members", "messages", "reactions", "membership_events", "purchases"]
        tables += ["member_daily_activity", "member_activity", "community_daily_totals", "channel_member_daily"]
        with source.connect() as a, target.connect() as b:
            for table in tables:
                n = a.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                assert b.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == n, table
                assert f"\n  {table} " in out
            assert a.execute(text("SELECT count(*) FROM messages")).scalar_one() == 2798
            last_id = b.execute(text("SELECT max(id) FROM messages")).scalar_one()
            assert [tuple(r) for r in b.execute(text("SELECT id, member_id FROM messages ORDER BY id"))] == [
                tuple(r) for r in a.execute(text("SELECT id, member_id FROM messages ORDER BY id"))
            ]
    finally:
        source.dispose()

    pg_config = tmp_path / "pg" / "cohortbot.toml"
    pg_config.parent.mkdir()
    pg_config.write_text(config.read_text(encoding="utf-8").replace(json.dumps(sqlite_url), json.dumps(pg_database)))
    report = _report_json(capsys, pg_config)
    assert report == _report_json(capsys, config)
    assert report["activity"]["messages_28d"] == 867  # type: ignore[index]  # the Komodo slice's last four weeks

    # The bot continues on PostgreSQL where the SQLite file left off: new rows get new ids, nothing collides.
    try:
        later = T0.replace(year=2019, month=12, day=12)
        bot_store = IngestStore(target)
        bot_store.register_community("komodo", "Europe/Berlin")
        bot_store.write_batch([Events(community="komodo").message("newcomer", at=later)])
        with target.connect() as b:
            assert b.execute(text("SELECT max(id) FROM messages")).scalar_one() == last_id + 1
    finally:
        target.dispose()

    # A second copy into the same database is refused, and changes nothing.
    code, out, err = cli(capsys, "db", "copy", "--to", pg_database, "--config", str(config))
    assert code == 1
    assert "already holds data (communities: 1 row" in err and "nothing was changed" in err


def test_copy_refuses_a_target_that_is_not_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = sqlite_file(tmp_path)
    config = write_config(tmp_path / "cohortbot.toml", url)
    assert cli(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    code, _, err = cli(capsys, "db", "copy", "--to", f"sqlite:///{tmp_path}/other.db", "--config", str(config))
    assert code == 2
    assert "--to must be a postgresql://" in err
