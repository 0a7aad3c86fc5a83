"""The version lives in one place (pyproject.toml) and the changelog has a section, with upgrade notes, for it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import bot

ROOT = Path(__file__).resolve().parent.parent
CHANGELOG = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def test_cohortbot_version_prints_the_version_pyproject_declares() -> None:
    declared = project_version()
    assert bot.__version__ == version("cohortbot") == declared  # a stale install would show here: reinstall
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == f"cohortbot {declared}\n"


def test_the_changelog_has_a_dated_section_for_the_current_version_and_unreleased_on_top() -> None:
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", CHANGELOG, re.M)
    assert headings[0][0] == "Unreleased"
    released = {name: rest for name, rest in headings[1:]}
    assert project_version() in released, "add a section for the version in pyproject.toml"
    for name, rest in released.items():
        assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), f"[{name}] needs its release date (Keep a Changelog)"


def test_every_section_says_what_an_upgrade_needs() -> None:
    sections = re.split(r"^## ", CHANGELOG, flags=re.M)[1:]
    for section in sections:
        title = section.splitlines()[0]
        assert "### Upgrading" in section, f"{title}: no Upgrading notes"
        assert "cohortbot db upgrade" in section.split("### Upgrading", 1)[1], title
