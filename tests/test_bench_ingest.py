"""The ingest benchmark keeps working (its figures live in docs/performance.md, not in a timed test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_ingest_runs_end_to_end_on_a_small_workload(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "ingest",
            "--events",
            "20000",
            "--prefill",
            "20000",
            "--members",
            "2000",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"ingest: \d+ events/s, \d+\.\d+ of raw sqlite3", lines[-1]), lines[-1]
    # The writer and the baseline stored the same rows, and the run reports its size on disk.
    assert any("(same rows as the writer)" in line for line in lines), result.stdout
    assert "ROWS DIFFER" not in result.stdout
    assert any("bytes per stored event" in line for line in lines)


@pytest.mark.slow
def test_bench_ingest_runs_against_postgresql_and_leaves_no_database_behind(tmp_path: Path) -> None:
    from bench.postgres import database_exists
    from tests.conftest import postgres_url, require_backend

    require_backend("postgresql")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "ingest",
            "--events",
            "5000",
            "--prefill",
            "5000",
            "--members",
            "500",
            "--workdir",
            str(tmp_path),
            "--url",
            postgres_url(),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"ingest: \d+ events/s, \d+\.\d+ of raw psycopg", lines[-1]), lines[-1]
    # The writer and the psycopg baseline stored the same rows on the server.
    assert any("(same rows as the writer)" in line for line in lines), result.stdout
    assert "ROWS DIFFER" not in result.stdout
    created = re.search(r"/(cohortbot_bench_\d+) \(created for this run", result.stdout)
    assert created, result.stdout
    assert not database_exists(postgres_url(), created.group(1))
