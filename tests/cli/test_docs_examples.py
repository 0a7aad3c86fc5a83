"""What a newcomer copies from the README and the docs works as written: one config name, and a database first."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.cli.test_cli import clean_environment  # noqa: F401  (autouse: empty folder, no COHORTBOT_* variables)
from tests.test_import_telegram import export, write

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLE = ROOT / "config.example.toml"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
KOMODO = ROOT / "tests" / "fixtures" / "komodo-discord-dce"
# Commands that read or write a database that must already exist: an example running one needs `db upgrade` first.
NEEDS_DATABASE = ("import", "report", "digest", "nudges", "jobs", "run", "forget", "db status", "db rebuild-rollups")


def shell_blocks(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Every ```sh block of a Markdown file, as (the heading above it, its command lines without comments)."""
    heading = ""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("# ").strip()
        if lines[i].strip() == "```sh":
            block: list[str] = []
            i += 1
            while lines[i].strip() != "```":
                command = lines[i].split(" #")[0].strip()
                if command:
                    block.append(command)
                i += 1
            yield heading, block
        i += 1


def section_snippet(heading: str) -> list[str]:
    return next(block for title, block in shell_blocks(README) if title == heading)


def test_the_example_config_says_to_copy_it_to_the_name_commands_find() -> None:
    header = EXAMPLE.read_text(encoding="utf-8").split("\n\n")[0]
    assert "Copy this file to cohortbot.toml" in header
    assert "config.toml" not in header.replace("config.example.toml", "").replace("cohortbot.toml", "")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_no_other_config_file(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    others = set(re.findall(r"[\w.-]+\.toml\b", text)) - {"cohortbot.toml", "config.example.toml", "pyproject.toml"}
    assert others == set(), f"{doc.name} names config files other than cohortbot.toml"


def test_the_readme_copies_the_example_to_cohortbot_toml() -> None:
    assert "cp config.example.toml cohortbot.toml" in section_snippet("Configure")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_example_that_needs_a_database_upgrades_it_first(doc: Path) -> None:
    for heading, block in shell_blocks(doc):
        upgraded = False
        for command in block:
            if command.startswith("cohortbot db upgrade"):
                upgraded = True
            needs = any(command.startswith(f"cohortbot {name}") for name in NEEDS_DATABASE)
            assert upgraded or not needs, f"{doc.name}, {heading!r}: `{command}` before `cohortbot db upgrade`"


def test_check_config_without_a_path_checks_the_local_cohortbot_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in section_snippet("Configure"):
        argv = shlex.split(command)
        if argv[0] == "cp":
            shutil.copy(ROOT / argv[1], tmp_path / argv[2])
        else:
            assert main(argv[1:]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "config OK" in out
    assert "community: PyCraft" in out  # the example's community: the copied file was read, not the defaults
    assert (tmp_path / "cohortbot.db").is_file()


def test_check_config_without_a_path_and_without_a_config_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 2
    assert capsys.readouterr().err == (
        "cohortbot: no config to check: copy config.example.toml to ./cohortbot.toml, or pass PATH\n"
    )


@pytest.mark.slow
def test_bring_your_history_runs_as_written_on_a_fresh_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's "Bring your history" snippet, in an empty folder with only the example config copied in."""
    shutil.copy(EXAMPLE, tmp_path / "cohortbot.toml")
    telegram_export = write(tmp_path / "result.json", export())
    stand_ins = {"~/exports/my-server/": str(KOMODO), "~/Downloads/ChatExport/result.json": str(telegram_export)}
    snippet = section_snippet("Bring your history, read the report")
    assert snippet[0] == "cohortbot db upgrade"
    for command in snippet:
        argv = [stand_ins.get(word, word) for word in shlex.split(command)]
        assert argv[0] == "cohortbot"
        code = main(argv[1:])
        captured = capsys.readouterr()
        assert code == 0, f"`{command}` failed: {captured.err}"
        assert "cohortbot:" not in captured.err  # a note about old data is fine, an error is not
    assert (tmp_path / "cohortbot.db").is_file()
    assert (tmp_path / "report" / "report.html").is_file()
    assert sorted(p.suffix for p in (tmp_path / "report").iterdir() if p.suffix == ".png")  # its charts
