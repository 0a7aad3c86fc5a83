"""The PostgreSQL side of the benchmarks: a scratch database that never outlives its run, and a faithful copy.

``python -m bench ingest --url`` and ``python -m bench analytics --url`` create their own database on the server
the URL names, load cached SQLite data into it with ``COPY``, and drop it at the end; these tests hold that to
what an operator relies on (nothing left behind, even after a failure or a killed run) and that the copy is the
same data (so that the timed report reads what the SQLite run reads).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bench import postgres
from bench.synthetic import Params, generate, rollups, write_database
from storage.engine import make_engine
from storage.models import Member, Purchase
from storage.rollups import read_rollups
from tests.conftest import postgres_url, require_backend

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> str:
    require_backend("postgresql")
    return postgres_url()


def test_the_scratch_database_is_dropped_even_when_the_run_fails(server: str) -> None:
    name = ""
    with pytest.raises(RuntimeError, match="the benchmark broke"), postgres.scratch_database(server) as url:
        name = url.rsplit("/", 1)[1]
        assert postgres.database_exists(server, name)
        raise RuntimeError("the benchmark broke")
    assert name.startswith("cohortbot_bench_")
    assert not postgres.database_exists(server, name)


def test_a_killed_runs_database_is_dropped_by_the_next_run(server: str) -> None:
    # A run killed with SIGKILL cannot clean up; its database carries its pid, and the next run drops it.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = f"cohortbot_bench_{int(gone.stdout)}"
    with postgres._admin(server) as conn:
        conn.execute(f'CREATE DATABASE "{abandoned}"')
    try:
        with postgres.scratch_database(server) as url:
            assert not postgres.database_exists(server, abandoned)
            assert postgres.database_exists(server, url.rsplit("/", 1)[1])
    finally:
        with postgres._admin(server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{abandoned}"')


@pytest.mark.slow
def test_the_copied_community_is_the_sqlite_one(server: str, tmp_path: Path) -> None:
    community = generate(Params(members=80, events=6000, weeks=3, seed=7))
    source = tmp_path / "community.db"
    write_database(source, community, rollups(community))
    with postgres.scratch_database(server) as db:
        copied = postgres.copy_from_sqlite(source, postgres.create_schema(db, "public"))
        assert copied["member_daily_activity"] > 0
        sqlite_engine, pg_engine = make_engine(f"sqlite:///{source}"), make_engine(db)
        try:
            with sqlite_engine.connect() as a, pg_engine.connect() as b:
                # Rollups (days, counts, millisecond timestamps), members and purchases read back the same.
                assert read_rollups(b, 1) == read_rollups(a, 1)
                members = select(Member).order_by(Member.id)
                assert [tuple(r) for r in b.execute(members)] == [tuple(r) for r in a.execute(members)]
                purchases = select(Purchase).order_by(Purchase.id)
                assert [tuple(r) for r in b.execute(purchases)] == [tuple(r) for r in a.execute(purchases)]
        finally:
            sqlite_engine.dispose()
            pg_engine.dispose()


def test_a_run_stopped_with_sigterm_drops_its_database(server: str) -> None:
    # What a timeout or `kill <pid>` sends: the run must still clean up after itself.
    script = (
        "import sys, time\n"
        "from bench.postgres import scratch_database\n"
        "with scratch_database(sys.argv[1]) as url:\n"
        "    print(url.rsplit('/', 1)[1], flush=True)\n"
        "    time.sleep(60)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script, server], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert run.stdout is not None
    name = run.stdout.readline().strip()
    assert name.startswith("cohortbot_bench_") and postgres.database_exists(server, name)
    run.terminate()
    run.wait(timeout=30)
    assert not postgres.database_exists(server, name)
