"""Names from the platforms cannot drive the operator's terminal, whichever CLI command prints them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from analytics.safe_text import clean_name, clean_text
from bot.cli import main
from bot.config import parse_settings
from bot.console import run_console
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import upgrade
from storage.models import JobRun
from tests.conftest import COMMUNITY, T0, Events, hours
from tests.console.test_console import config_data
from tests.helpers.fake_actions import FakeClock

# A colour escape, a right-to-left override that reverses what follows, and a bell.
EVIL = "\x1b[31mevil\u202e\x07"
SHOWN = "?[31mevil??"
CONTROL = ("\x1b", "\u202e", "\x07")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
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


@pytest.fixture
def config(store: IngestStore, ev: Events, db_url: str, tmp_path: Path) -> Path:
    """The hostile member was busy in the week of T0, then went quiet; a job run failed on them."""
    store.write_batch(
        [ev.join("evil", at=T0 - timedelta(days=30)), ev.join("nice", at=T0 - timedelta(days=30))]
        + [ev.message("evil", name=EVIL, at=T0 + hours(i)) for i in range(12)]
        + [ev.message(f"m{i}", name=f"Member {i}", at=T0 + hours(i)) for i in range(6)]
        + [ev.message("nice", name="Nice", at=T0 + timedelta(days=20))]
    )
    cid = store.community_id(COMMUNITY)
    with store.engine.begin() as conn:
        conn.execute(
            insert(JobRun).values(
                community_id=cid,
                job="nudges",
                started_at=T0,
                finished_at=T0,
                outcome="failed",
                detail=f"could not message {EVIL}: blocked",
            )
        )
    path = tmp_path / "c.toml"
    path.write_text(
        f'[community]\nname = "{COMMUNITY}"\ntimezone = "Europe/Berlin"\n\n[storage]\nurl = {json.dumps(db_url)}\n',
        encoding="utf-8",
    )
    return path


def _printed(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--as-of", "2024-03-28"],
        ["digest", "--preview", "--as-of", "2024-03-11"],
        ["nudges", "--dry-run", "--as-of", "2024-03-28"],
        ["jobs"],
    ],
    ids=["report", "digest-preview", "nudges-dry-run", "jobs"],
)
def test_a_hostile_name_is_shown_defused(argv: list[str], config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    printed = _printed(capsys, *argv, "--config", str(config))
    assert SHOWN in printed  # the member is listed ...
    assert not any(ch in printed for ch in CONTROL)  # ... and nothing in the output drives the terminal


def test_cleaning_keeps_layout_emoji_and_ordinary_names() -> None:
    assert clean_name(EVIL) == SHOWN
    assert clean_name("Zoë 👩\u200d💻 O'Brien") == "Zoë 👩\u200d💻 O'Brien"
    assert clean_name("two\nlines") == "two lines"  # a name cannot forge a line of output
    assert clean_text(f"a\tb\r\n{EVIL}\n") == f"a\tb\r\n{SHOWN}\n"


def test_the_console_shows_typed_and_stored_control_characters_defused(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    engine = make_engine(f"sqlite:///{db.as_posix()}")
    upgrade(engine)
    engine.dispose()
    settings = parse_settings(config_data(db))
    out = io.StringIO()
    typed = f"@alice look {EVIL} and \x1b]0;new window title\x07\n/help\n"
    assert run_console(settings, stdin=io.StringIO(typed), stdout=out, clock=FakeClock(T0)) == 0
    shown = out.getvalue()
    assert f"look {SHOWN} and ?]0;new window title?" in shown  # the echo of what was typed
    assert not any(ch in shown for ch in CONTROL)
