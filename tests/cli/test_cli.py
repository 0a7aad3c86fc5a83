"""The ``cohortbot`` command line, as an operator runs it: real subprocesses, plus ``main()`` in-process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from bot.cli import main
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import current_revision, head_revision
from tests.conftest import COMMUNITY, T0, Events, hours

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
TELEGRAM_TOKEN = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
CLI_VARIABLES = ("COHORTBOT_CONFIG", "COHORTBOT_TELEGRAM_TOKEN", "COHORTBOT_DISCORD_TOKEN", "COHORTBOT_SECRET")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Run in an empty folder with no cohortbot settings from the environment; restore logging afterwards."""
    # Only what the command line reads: COHORTBOT_TEST_* and COHORTBOT_REQUIRE_POSTGRES steer the fixtures.
    for name in CLI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` the way an operator would, without any COHORTBOT_* variable unless given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(path: Path, url: str, *, extra: str = "") -> Path:
    """A config for the ``testers`` community (the ``store`` fixture's) with its database at ``url``."""
    path.write_text(
        f'[community]\nname = "{COMMUNITY}"\ntimezone = "Europe/Berlin"\n\n[storage]\nurl = {json.dumps(url)}\n{extra}',
        encoding="utf-8",
    )
    return path


def count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def messages_of(engine: Engine, user: str) -> int:
    return count(
        engine,
        "SELECT count(*) FROM messages m JOIN members u ON u.id = m.member_id WHERE u.platform_user_id = :user",
        user=user,
    )


def table_counts(engine: Engine) -> dict[str, int]:
    tables = ("members", "messages", "reactions", "member_daily_activity", "member_activity")
    return {table: count(engine, f"SELECT count(*) FROM {table}") for table in tables}


# --- version, usage ---


@pytest.mark.slow
def test_version_comes_from_the_installed_package(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cohortbot {version('cohortbot')}"
    assert result.stdout.strip().split()[1].count(".") == 2  # a real release version, not 0.0.0+unknown
    assert "unknown" not in result.stdout


@pytest.mark.slow
def test_no_arguments_prints_usage_and_exits_2(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "usage: cohortbot" in output
    for command in ("check-config", "db", "forget"):
        assert command in output


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


# --- check-config ---


@pytest.mark.slow
def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    result = run_cli("check-config", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "config OK"
    community = example["community"]
    assert f"community: {community['name']} ({community['timezone']})" in result.stdout
    assert ", ".join(course["id"] for course in example["courses"]) in result.stdout
    assert result.stderr == ""


def test_check_config_lists_every_problem_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[community]\ntimezone = "Mars/Olympus"\n\n'
        '[nudges]\ninactive_after_days = "soon"\ncooldown_days = -3\n\n'
        '[digest]\nweekdya = "monday"\n',
        encoding="utf-8",
    )
    assert main(["check-config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "config OK" not in captured.out
    err = captured.err
    assert "4 problems" in err
    assert '[nudges] inactive_after_days: expected a positive integer, got "soon"' in err
    assert "[nudges] cooldown_days: expected a positive integer, got -3" in err
    assert '[community] timezone: expected an IANA time zone name such as "Europe/Berlin", got "Mars/Olympus"' in err
    assert "[digest] weekdya" in err and "weekday" in err  # the typo is named, with the right spelling


def test_check_config_counts_a_single_problem_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[nudges]\ncooldown_days = -3\n", encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{bad}: 1 problem:",
        "  [nudges] cooldown_days: expected a positive integer, got -3",
    ]


@pytest.mark.slow
def test_check_config_of_broken_file_in_a_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[nudges]\ninactive_after_days = "soon"\n', encoding="utf-8")
    result = run_cli("check-config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert '[nudges] inactive_after_days: expected a positive integer, got "soon"' in result.stderr
    assert "config OK" not in result.stdout


def test_check_config_of_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "nowhere.toml"]) == 2
    err = capsys.readouterr().err
    assert "cannot read config file nowhere.toml" in err
    assert "No such file" in err


def test_check_config_of_unreadable_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "config.toml"  # a folder, so reading it fails even when the tests run as root
    folder.mkdir()
    assert main(["check-config", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read config file {folder}" in err


def test_check_config_of_invalid_toml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[community]\nname = "x"\n[storage\n', encoding="utf-8")
    assert main(["check-config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "invalid TOML" in err
    assert "line 3" in err


def test_database_command_with_missing_config_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--config", "missing.toml"]) == 2
    err = capsys.readouterr().err
    assert "cannot read config file missing.toml" in err
    # It must not fall back to the default database.
    assert list(tmp_path.iterdir()) == []


def test_database_command_with_invalid_config_lists_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path}/x.db", extra='\n[nudges]\nmax_per_day = "lots"\n')
    assert main(["db", "upgrade", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "[nudges] max_per_day" in err
    assert not (tmp_path / "x.db").exists()


# --- where the config comes from ---


def test_without_config_the_default_database_is_created_in_the_working_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "cohortbot.db").is_file()
    assert "upgraded from an empty database" in capsys.readouterr().out


def test_cohortbot_toml_in_the_working_folder_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path / "cohortbot.toml", "sqlite:///local.db")
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "local.db").is_file()
    assert not (tmp_path / "cohortbot.db").exists()


def test_cohortbot_config_variable_wins_over_the_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path / "cohortbot.toml", "sqlite:///local.db")
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    monkeypatch.setenv("COHORTBOT_CONFIG", str(write_config(elsewhere / "prod.toml", f"sqlite:///{tmp_path}/prod.db")))
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "prod.db").is_file()
    assert not (tmp_path / "local.db").exists()


# --- db upgrade / status ---


@pytest.mark.slow
def test_db_upgrade_creates_a_sqlite_database_then_is_a_no_op(tmp_path: Path) -> None:
    database = tmp_path / "data" / "cohort.db"
    config = write_config(tmp_path / "c.toml", f"sqlite:///{database}")
    assert not database.exists()

    first = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert database.is_file()
    assert f"upgraded from an empty database to schema revision {head_revision()}" in first.stdout

    engine = make_engine(f"sqlite:///{database}")
    try:
        assert current_revision(engine) == head_revision()
        assert {"members", "messages", "purchases"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()

    second = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"already at schema revision {head_revision()}" in second.stdout
    assert "upgraded" not in second.stdout


@pytest.mark.slow
def test_db_status_before_and_after_upgrade(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path}/cohort.db")
    before = run_cli("db", "status", "--config", str(config), cwd=tmp_path)
    assert before.returncode == 1
    assert f"no database at {tmp_path}/cohort.db" in before.stderr
    assert "cohortbot db upgrade" in before.stderr
    assert not (tmp_path / "cohort.db").exists()  # asking about a database never creates one

    assert run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path).returncode == 0

    after = run_cli("db", "status", "--config", str(config), cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert f"schema revision {head_revision()}" in after.stdout
    assert "up to date" in after.stdout


@pytest.mark.storage
@pytest.mark.slow
def test_db_upgrade_and_status_on_every_backend(db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", db_url)
    status = run_cli("db", "status", "--config", str(config), cwd=tmp_path)
    assert status.returncode == 1, status.stderr

    upgraded = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from an empty database to schema revision {head_revision()}" in upgraded.stdout

    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()

    again = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already at schema revision" in again.stdout
    status = run_cli("db", "status", "--config", str(config), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "up to date" in status.stdout


@pytest.mark.storage
def test_rebuild_rollups_on_a_never_upgraded_database_says_to_upgrade(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["db", "rebuild-rollups", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    # SQLite: the file does not exist yet; PostgreSQL: the database exists but has no tables.
    assert ("no database at" in err) if db_url.startswith("sqlite") else ("has no cohortbot schema" in err)
    assert "run `cohortbot db upgrade" in err
    engine = make_engine(db_url)
    try:  # the failed command created nothing
        assert current_revision(engine) is None
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.storage
def test_rebuild_rollups_after_upgrade_reports_the_rebuilt_days(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 22:30 UTC on Monday is 23:30 in Berlin, 23:30 UTC is already Tuesday there: two local days.
    store.write_batch([ev.message("alice", at=T0 + hours(13.5)), ev.message("bob", at=T0 + hours(14.5))])
    before = table_counts(store.engine)
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["db", "rebuild-rollups", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"rebuilt rollups of '{COMMUNITY}' in Europe/Berlin: 2 days, 2 active members" in out
    assert table_counts(store.engine) == before


# --- forget ---


def seed_conversation(store: IngestStore, ev: Events) -> None:
    """Alice posts three messages, Bob two (one a reply to Alice) and Bob reacts to one of Alice's."""
    first = ev.message("alice", message_id="a1", at=T0)
    store.write_batch(
        [
            first,
            ev.message("alice", message_id="a2", at=T0 + hours(1)),
            ev.message("alice", message_id="a3", at=T0 + hours(2)),
            ev.message("bob", message_id="b1", at=T0 + hours(3), reply_to_user="alice"),
            ev.message("bob", message_id="b2", at=T0 + hours(4)),
        ]
    )
    store.write_batch([ev.reaction("bob", "a1", at=T0 + hours(5), author="alice")])


@pytest.mark.storage
def test_forget_without_yes_refuses_and_changes_nothing(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_conversation(store, ev)
    before = table_counts(store.engine)
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["forget", "--config", str(config), "--platform", "discord", "--user", "alice"]) == 2
    captured = capsys.readouterr()
    assert "--yes" in captured.err
    assert "alice" in captured.err
    assert "deleted" not in captured.out
    assert table_counts(store.engine) == before
    assert messages_of(store.engine, "alice") == 3


@pytest.mark.storage
@pytest.mark.slow
def test_forget_with_yes_deletes_the_members_data(store: IngestStore, ev: Events, db_url: str, tmp_path: Path) -> None:
    seed_conversation(store, ev)
    before = table_counts(store.engine)
    assert messages_of(store.engine, "alice") == 3
    config = write_config(tmp_path / "c.toml", db_url)

    result = run_cli(
        "forget", "--config", str(config), "--platform", "discord", "--user", "alice", "--yes", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr

    after = table_counts(store.engine)
    assert messages_of(store.engine, "alice") == 0
    assert messages_of(store.engine, "bob") == 2
    assert count(store.engine, "SELECT count(*) FROM members WHERE platform_user_id = 'alice'") == 0
    assert after["members"] == before["members"] - 1
    assert after["messages"] == before["messages"] - 3
    # Bob's reaction was on Alice's message: the reaction row is Bob's, so it stays.
    assert after["reactions"] == before["reactions"]
    # Bob's reply stays, no longer pointing at Alice.
    assert count(store.engine, "SELECT count(*) FROM messages WHERE reply_to_member_id IS NOT NULL") == 0

    # What the command printed matches what left the database.
    out = result.stdout
    assert out.startswith("deleted ")
    assert f"messages: {before['messages'] - after['messages']}" in out
    assert "members: 1" in out
    assert "kept without the person" in out


@pytest.mark.storage
def test_forget_unknown_user_says_nothing_is_stored(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_conversation(store, ev)
    before = table_counts(store.engine)
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["forget", "--config", str(config), "--platform", "discord", "--user", "nobody", "--yes"]) == 0
    assert "nothing is stored about discord user nobody" in capsys.readouterr().out
    assert table_counts(store.engine) == before


@pytest.mark.storage
def test_forget_only_touches_the_named_platform(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_conversation(store, ev)  # Alice is a Discord account
    before = table_counts(store.engine)
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["forget", "--config", str(config), "--platform", "telegram", "--user", "alice", "--yes"]) == 0
    assert "nothing is stored about telegram user alice" in capsys.readouterr().out
    assert table_counts(store.engine) == before


# --- secrets ---


@pytest.mark.slow
def test_telegram_token_from_the_environment_never_appears_in_output(tmp_path: Path) -> None:
    env = {"COHORTBOT_TELEGRAM_TOKEN": TELEGRAM_TOKEN}
    secret_part = TELEGRAM_TOKEN.split(":", 1)[1]
    # A config that makes cohortbot echo values back: the token pasted as a time zone, and as a database
    # password for a server that refuses connections (port 1), so the failure message names the URL.
    echoed = tmp_path / "echoed.toml"
    echoed.write_text(f'[community]\ntimezone = "{TELEGRAM_TOKEN}"\n', encoding="utf-8")
    unreachable = write_config(
        tmp_path / "unreachable.toml",
        f"postgresql://bob:{TELEGRAM_TOKEN}@127.0.0.1:1/cohortbot",
        extra="\n[telegram]\nenabled = true\nchat_ids = [-1001234567890]\n",
    )
    runs = [
        run_cli("--log-level", "DEBUG", "check-config", str(echoed), cwd=tmp_path, env=env),
        run_cli("--log-level", "DEBUG", "db", "status", "--config", str(echoed), cwd=tmp_path, env=env),
        run_cli("--log-level", "DEBUG", "check-config", str(unreachable), cwd=tmp_path, env=env),
        run_cli("--log-level", "DEBUG", "db", "upgrade", "--config", str(unreachable), cwd=tmp_path, env=env),
    ]
    assert [r.returncode for r in runs] == [2, 2, 0, 1]
    for result in runs:
        output = result.stdout + result.stderr
        assert TELEGRAM_TOKEN not in output
        assert secret_part not in output
    # The commands did get as far as showing the values, masked.
    assert "timezone" in runs[0].stderr
    assert "platforms: telegram" in runs[2].stdout
    assert "cannot migrate: cannot connect to the database postgresql://bob:***@127.0.0.1:1/cohortbot" in runs[3].stderr


# --- cohortbot run: what stops it before it connects anywhere ---


def test_run_with_no_platform_enabled_says_what_to_enable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bot.toml"
    config.write_text('[storage]\nurl = "sqlite:///bot.db"\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "no platform is enabled" in err and "[telegram]" in err
    assert not (tmp_path / "bot.db").exists()


def test_run_without_the_token_names_the_variable_to_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bot.toml"
    config.write_text('[storage]\nurl = "sqlite:///bot.db"\n[telegram]\nenabled = true\nchat_ids = [-100123]\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "COHORTBOT_TELEGRAM_TOKEN" in err
    assert not (tmp_path / "bot.db").exists()


def test_run_on_a_database_that_was_never_upgraded_says_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text('[storage]\nurl = "sqlite:///bot.db"\n[discord]\nenabled = true\nguild_ids = [42]\n')
    monkeypatch.setenv("COHORTBOT_DISCORD_TOKEN", "discord-token-for-tests")
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "cohortbot db upgrade" in err
    assert "discord-token-for-tests" not in err


# --- a busy or unreachable database ---

BUSY = "cohortbot: database is busy (held by another process); try again\n"


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    """A migrated SQLite database with a conversation, a Telegram export beside it, and a config waiting 0.2 s.

    Yields the config and an engine to inspect the database; the test takes the write lock itself.
    """
    from storage.migrate import upgrade

    db = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "Europe/Berlin")
    seed_conversation(store, Events())
    config = write_config(tmp_path / "c.toml", f"sqlite:///{db}", extra="busy_timeout_seconds = 0.2\n")
    yield config, engine
    engine.dispose()


def hold_write_lock(db: Path) -> Any:
    """Another connection (as another process would) that holds the database's write lock until closed."""
    import sqlite3

    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.mark.parametrize(
    "command",
    [
        ["forget", "--platform", "discord", "--user", "alice", "--yes"],
        ["db", "rebuild-rollups"],
        ["import", "telegram-export", "result.json"],
    ],
)
def test_a_write_locked_database_is_busy_and_nothing_changes(
    locked_sqlite: tuple[Path, Engine], tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config, engine = locked_sqlite
    (tmp_path / "result.json").write_text(
        json.dumps(
            {
                "name": "Group",
                "type": "private_supergroup",
                "id": 42,
                "messages": [
                    {"id": 1, "type": "message", "date_unixtime": "1709542800", "from": "Zoe", "from_id": "user7"}
                ],
            }
        ),
        encoding="utf-8",
    )
    before = table_counts(engine)
    with engine.connect() as conn:
        rollups = conn.execute(text("SELECT * FROM community_daily_totals ORDER BY 1, 2")).all()
    holder = hold_write_lock(tmp_path / "busy.db")
    try:
        assert main([*command, "--config", str(config)]) == 1
    finally:
        holder.rollback()
        holder.close()
    captured = capsys.readouterr()
    assert captured.err == BUSY
    assert captured.out == ""
    assert table_counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT * FROM community_daily_totals ORDER BY 1, 2")).all() == rollups
    # Once the lock is gone the same command goes through.
    assert main([*command, "--config", str(config)]) == 0


@pytest.mark.parametrize(
    "command",
    [
        ["report"],
        ["db", "status"],
        ["db", "upgrade"],
        ["db", "rebuild-rollups"],
        ["jobs"],
        ["import", "discord-export", "."],
        ["forget", "--platform", "telegram", "--user", "1", "--yes"],
        ["nudges", "--dry-run"],
        ["digest", "--preview"],
        ["console"],
    ],
)
def test_an_unreachable_postgresql_server_is_one_line_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # Port 1 on the loopback interface: nothing listens there, so the connection is refused at once.
    config = write_config(tmp_path / "c.toml", "postgresql://cohort:s3cr3t-pw@127.0.0.1:1/cohortbot")
    assert main([*command, "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert "s3cr3t-pw" not in captured.err + captured.out
    assert captured.err.startswith("cohortbot: ")
    assert "cannot connect to the database postgresql://cohort:***@127.0.0.1:1/cohortbot: " in captured.err
    assert "Connection refused" in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_database_error_lines_mask_passwords_wherever_the_driver_quotes_them() -> None:
    from sqlalchemy.exc import OperationalError

    from storage.engine import database_error_line

    url = "postgresql://cohort:hunter22@db.example:5432/x"
    quoted = OperationalError("connect", {}, Exception("bad conninfo 'password=hunter22 host=db' for hunter22\nhint"))
    line = database_error_line(quoted, url)
    assert "hunter22" not in line
    assert "\n" not in line
    assert line.startswith("database postgresql://cohort:***@db.example:5432/x: bad conninfo")


# --- report bounds ---


@pytest.mark.storage
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "0001-01-01"], "--as-of: expected a day from 1970-01-01 to 2099-12-31, got 0001-01-01"),
        (["--as-of", "9999-12-31"], "--as-of: expected a day from 1970-01-01 to 2099-12-31, got 9999-12-31"),
        (["--weeks", "100000"], "--weeks: expected 1 to 1040 weeks (20 years), got 100000"),
    ],
)
def test_report_outside_its_bounds_states_them(
    store: IngestStore,
    ev: Events,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    seed_conversation(store, ev)
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["report", "--config", str(config), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"cohortbot: {message}\n"
    assert captured.out == ""


@pytest.mark.storage
def test_report_at_its_bounds_works(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_conversation(store, ev)
    config = write_config(tmp_path / "c.toml", db_url)
    for args in (["--as-of", "1970-01-01"], ["--as-of", "2099-12-31", "--weeks", "1040"]):
        assert main(["report", "--config", str(config), "--format", "json", *args]) == 0
        assert json.loads(capsys.readouterr().out)["as_of"] == args[1]


@pytest.mark.parametrize("command", [["digest", "--preview"], ["nudges", "--dry-run"]])
def test_digest_and_nudge_days_have_the_same_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config = write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path}/none.db")
    assert main([*command, "--as-of", "9999-12-31", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        "cohortbot: --as-of: expected a day from 1970-01-01 to 2099-12-31, got 9999-12-31\n"
    )


def test_check_config_refuses_values_the_platforms_cannot_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[telegram]\nowner_ids = [9223372036854775808]\n\n[[courses]]\nid = "free"\ntitle = "Free"\nprice_stars = 0\n\n'
        '[[courses]]\nid = "gold"\ntitle = "Gold"\nprice_stars = 10001\n',
        encoding="utf-8",
    )
    assert main(["check-config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "config OK" not in captured.out
    stars = "price_stars: expected a whole number of Telegram Stars from 1 to 10,000 (Telegram's most per invoice)"
    assert captured.err.splitlines() == [
        f"{bad}: 3 problems:",
        "  [telegram] owner_ids: expected a list of Telegram user IDs (positive integers), each fitting in 64 bits "
        "(at most 9223372036854775807), got [9223372036854775808]",
        f'  [[courses]] #1 (id "free") {stars}, got 0',
        f'  [[courses]] #2 (id "gold") {stars}, got 10001',
    ]
