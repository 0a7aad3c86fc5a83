"""``python -m bench commands``: it answers every timed command through the dispatcher, from rollups and caches."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"^commands: stats p99 [\d.]+ ms, leaderboard p99 [\d.]+ ms, inactive p95 \d+ ms, report p95 \d+ ms "
    r"at (\d+) events$"
)


@pytest.mark.slow
def test_the_benchmark_times_each_command_and_never_reads_raw_events(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "commands",
            "--members",
            "300",
            "--events",
            "20000",
            "--history-weeks",
            "8",
            "--stats",
            "5",
            "--leaderboard",
            "3",
            "--admin-runs",
            "2",
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    summary = SUMMARY.match(lines[-1])
    assert summary is not None, lines[-1]
    assert int(summary.group(1)) >= 20_000
    # Every command has a row with its number of timed runs, and answered with its real first line.
    runs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^  /(\w+) +(\d+) ", done.stdout, re.MULTILINE)}
    assert runs == {"stats": 5, "leaderboard": 3, "inactive": 2, "report": 2}
    assert "/stats answers: Your activity in " in done.stdout
    assert "/report answers: bench-analytics: report as of " in done.stdout
    reads = re.search(r"raw-event reads during the timed commands: (\d+) of ([\d,]+) SQL statements", done.stdout)
    assert reads is not None
    assert reads.group(1) == "0" and int(reads.group(2).replace(",", "")) > 0
    # The bot's copy of the community is gone; the cached community stays for the next run.
    assert not list(tmp_path.glob("commands-*"))
