"""The import benchmark keeps working (its figures live in docs/performance.md, not in a timed test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.import_ import generate
from bot.importers.discord_export import DiscordExportReader
from storage.events import MemberJoined, MessageEvent

ROOT = Path(__file__).resolve().parents[1]


def test_generated_export_has_the_shape_dce_writes(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    generate(path, 3000, 200, seed=3)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) >= {"guild", "channel", "messages"}
    assert len(doc["messages"]) == doc["messageCount"] == 3000
    assert {"Default", "Reply", "GuildMemberJoin"} == {m["type"] for m in doc["messages"]}
    parsed = DiscordExportReader("bench").parse(path)
    messages = [e for e in parsed.events if isinstance(e, MessageEvent)]
    assert len(parsed.events) == 3000 and parsed.messages == len(messages)
    assert any(isinstance(e, MemberJoined) for e in parsed.events)
    # Replies point at earlier messages of the export, so they resolve to their authors.
    assert any(m.reply_to_user_id for m in messages)
    assert any(m.author.is_bot for m in messages) and any(m.attachments for m in messages)
    assert any(m.imported_reactions for m in messages)


@pytest.mark.slow
def test_bench_import_runs_end_to_end_on_a_tiny_export(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "import", "--messages", "3000", "--members", "300", "--workdir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"import: \d+ messages/s", lines[-1]), lines[-1]
    assert any(line.startswith("parse: ") for line in lines), result.stdout
    assert any(line.startswith("store: ") for line in lines), result.stdout
    assert any("every message stored" in line for line in lines), result.stdout
    # The databases of the run are removed; the generated export stays for the next run.
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"]
