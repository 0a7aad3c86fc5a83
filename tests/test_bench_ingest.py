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
