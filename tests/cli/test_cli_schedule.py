"""`cohortbot digest`, `cohortbot nudges` and `cohortbot jobs` as an operator or a cron job runs them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cli import main
from bot.core.nudges import in_holdout
from storage.ingest import IngestStore
from storage.job_runs import finish_job_run, start_job_run
from tests.cli.test_cli import write_config
from tests.conftest import COMMUNITY, Events

LAST_SEEN = datetime(2024, 4, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("COHORTBOT_CONFIG", "COHORTBOT_TELEGRAM_TOKEN", "COHORTBOT_DISCORD_TOKEN", "COHORTBOT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def seed(store: IngestStore, ev: Events) -> None:
    users = [f"u{i}" for i in range(12)]
    events = [ev.join(u, at=LAST_SEEN - timedelta(days=20)) for u in users]
    events += [ev.message(u, at=LAST_SEEN + timedelta(hours=i), channel="help") for i, u in enumerate(users)]
    regulars = ["ada", "bo", "cy", "di", "ed", "flo"]  # active in the week of 29 April: not inactive
    events += [
        ev.message(r, at=datetime(2024, 4, 29 + d, 12, tzinfo=UTC), channel="help") for d in range(2) for r in regulars
    ]
    store.write_batch(events)


@pytest.mark.storage
def test_digest_preview_prints_the_week_and_writes_text_and_chart(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(store, ev)
    config = write_config(tmp_path / "c.toml", db_url)
    out = tmp_path / "digest"
    code = main(["digest", "--preview", "--as-of", "2024-05-06", "--out", str(out), "--config", str(config)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "week 2024-W18" in printed  # 29 April - 5 May: the last complete week before 6 May
    assert "Active members: 6" in printed
    text_file = out / "digest-2024-W18.txt"
    assert text_file.read_text(encoding="utf-8").startswith(f"{COMMUNITY}: week 2024-W18")
    pngs = list(out.glob("*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.storage
def test_digest_without_preview_needs_a_platform_and_as_of_needs_preview(
    store: IngestStore, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["digest", "--config", str(config)]) == 2
    assert "--preview" in capsys.readouterr().err
    assert main(["digest", "--as-of", "2024-05-06", "--config", str(config)]) == 2
    assert "--as-of only works with --preview" in capsys.readouterr().err


@pytest.mark.storage
def test_nudges_dry_run_json_lists_planned_holdout_and_skipped(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(store, ev)
    config = write_config(
        tmp_path / "c.toml", db_url, extra="\n[nudges]\nenabled = true\nmax_per_run = 4\nholdout_share = 0.2\n"
    )
    assert main(["nudges", "--dry-run", "--as-of", "2024-05-06", "--format", "json", "--config", str(config)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan) == {"as_of", "eligible", "planned", "holdout", "skipped"}
    assert plan["eligible"] == 12  # the regulars posted last week: not inactive
    # The 12 silent members, and which of them the stable holdout hash puts in the 20% comparison group.
    community_id = store.community_id(COMMUNITY)
    with store.engine.connect() as conn:
        silent = set(
            conn.execute(
                text("SELECT id FROM members WHERE community_id = :c AND platform_user_id LIKE 'u%'"),
                {"c": community_id},
            ).scalars()
        )
    assert len(silent) == 12
    hold = {m for m in silent if in_holdout(community_id, m, 0.2)}
    treat = silent - hold
    assert hold and len(treat) > 4  # this seed exercises both the holdout and the budget
    # 4 are nudged (max_per_run); the holdout keeps its 20% share of those sent: round(4 * 0.2 / 0.8) = 1 member;
    # every other treated member waits for budget in a later run.
    assert len(plan["planned"]) == 4 and set(plan["planned"]) <= treat
    assert len(plan["holdout"]) == 1 and set(plan["holdout"]) <= hold
    assert plan["skipped"] == {"over_budget": len(treat) - 4}
    # A dry run records nothing: running it again gives the same plan.
    assert main(["nudges", "--dry-run", "--as-of", "2024-05-06", "--format", "json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == plan


@pytest.mark.storage
def test_nudges_dry_run_text_is_readable(
    store: IngestStore, ev: Events, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(store, ev)
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["nudges", "--dry-run", "--as-of", "2024-05-06", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "eligible: 12" in captured.out and "dry run: nothing is sent" in captured.out
    assert "U0 (discord u0, last active 2024-04-01)" in captured.out
    assert "enabled = false" in captured.err  # the operator learns why the bot would not send them


@pytest.mark.storage
def test_jobs_shows_next_and_last_runs(
    store: IngestStore, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    community_id = store.community_id(COMMUNITY)
    at = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)
    run = start_job_run(store.engine, community_id, "digest", now=at, host="vps:42")
    finish_job_run(
        store.engine, run, now=at + timedelta(seconds=3), outcome="ok", detail="digest 2024-W18 sent to 2 of 2 targets"
    )
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["jobs", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "2024-05-06 09:00" in lines["digest"] and "ok" in lines["digest"] and "2 of 2" in lines["digest"]
    assert "never" in lines["refresh"]
    assert " off " in lines["nudges"]  # nudges are off unless the owner opts in


def test_jobs_on_a_fresh_database_says_how_a_community_gets_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path / "cohortbot.toml", "sqlite:///fresh.db")
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["jobs"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"cohortbot: nothing is stored for {COMMUNITY!r} yet: start the bot (`cohortbot run`) or import its history "
        "(`cohortbot import discord-export|telegram-export ...`) first\n"
    )
    assert "--community" not in captured.err  # `jobs` has no such option
    assert captured.out == ""


@pytest.mark.storage
def test_jobs_for_another_community_names_the_stored_ones_and_the_setting(
    store: IngestStore, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.community_id(COMMUNITY)
    config = tmp_path / "c.toml"
    config.write_text(f'[community]\nname = "Elsewhere"\n\n[storage]\nurl = {json.dumps(db_url)}\n', encoding="utf-8")
    assert main(["jobs", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"cohortbot: no community 'Elsewhere' in this database (it holds {COMMUNITY!r}); "
        "set [community] name to one of them\n"
    )
