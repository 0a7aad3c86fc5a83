"""The run of ``python -m bench analytics``: options, both sides in fresh processes, the comparison, the report."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from bench.analytics.common import (
    REPORT_WEEKS,
    TARGET_PEAK_MB,
    TARGET_RATIO,
    TARGET_SECONDS,
    add_community_arguments,
)
from bench.analytics.compare import compare
from bench.analytics.ours import measure_ours
from bench.analytics.reference import measure_duckdb
from bench.measure import MB, load_average, met, positive_int
from bench.synthetic import (
    FIRST_DAY,
    Cached,
    Params,
    ensure,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench analytics``."""
    add_community_arguments(parser, seed_help="random seed of the community", workdir_note="")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per side, best kept (default 3)")
    parser.add_argument(
        "--url",
        default=None,
        help="read the report from this PostgreSQL server instead of SQLite, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres (the server: the run creates its own database "
        "cohortbot_bench_<pid> there, loads the community with COPY, and drops it at the end)",
    )


# --- the run -----------------------------------------------------------------------------------------------------


def _in_fresh_process(func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    # A spawned process per side: each peak RSS is that side's alone (not the generator's, not the other side's).
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def _times(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _wrap(names: Sequence[str], width: int = 116) -> list[str]:
    lines, line = [], ""
    for name in names:
        piece = name if not line else f", {name}"
        if len(line) + len(piece) > width:
            lines.append(line + ",")
            line = name
        else:
            line += piece
    return [*lines, line] if line else lines


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; the last line is the one-line summary."""
    import duckdb

    print(
        f"cohortbot analytics benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"pandas {pd.__version__}, numpy {np.__version__}, DuckDB {duckdb.__version__}; {os.cpu_count()} CPUs; "
        f"load average {load_average()}",
        flush=True,
    )
    params = Params(members=args.members, events=args.events, weeks=args.history_weeks, seed=args.seed)
    started = time.perf_counter()
    cached = ensure(params, args.workdir)
    s, n = cached.seconds, cached.counts
    how = "generated now" if cached.built_now else "cached; generating it took"
    print(
        f"community: {args.members:,} members, {n['events']:,} events ({n['messages']:,} messages incl. "
        f"{n['bot_messages']:,} by bots, {n['reactions']:,} reactions), {n['memberships']:,} joins/leaves, "
        f"{n['purchases']:,} purchases ({n['refunds']:,} refunded; {n.get('periods', 0):,} paid periods of "
        f"{n.get('subscriptions', 0):,} subscriptions), {n['channels']} channels; "
        f"{args.history_weeks} weeks from {FIRST_DAY.isoformat()}, seed {args.seed}",
    )
    print(
        f"synthetic: {cached.db} + .npz ({how} {s['total']:.1f} s: events {s['generate']:.1f} s, rollups "
        f"{s['rollups']:.1f} s, SQLite {s['database']:.1f} s, arrays {s['arrays']:.1f} s; "
        f"{n['member_days']:,} member-day rows)"
        + (f"; this run: {time.perf_counter() - started:.1f} s" if cached.built_now else ""),
        flush=True,
    )
    as_of = FIRST_DAY + timedelta(days=params.days - 1)
    if getattr(args, "url", None) is not None:
        return _run_postgres(args, cached, as_of)
    return _measure_and_compare(args, f"sqlite:///{cached.db}", str(cached.npz), as_of)


def _run_postgres(args: argparse.Namespace, cached: Cached, as_of: date) -> int:
    """The same comparison with the report read from PostgreSQL: the cached community is copied into a scratch
    database on the server (``COPY``, untimed), which is dropped at the end."""
    from bench import postgres

    url: str = args.url
    if not postgres.is_postgres(url):
        raise SystemExit(f"--url: expected a postgresql://user@host:port URL, got {postgres.shown(url)}")
    print(f"postgresql: {postgres.server_version(url)} at {postgres.shown(url)}", flush=True)
    with postgres.scratch_database(url) as db:
        started = time.perf_counter()
        target = postgres.create_schema(db, "public")
        copied = postgres.copy_from_sqlite(cached.db, target)
        print(
            f"database: {postgres.shown(db)} (created for this run, dropped at its end); the community copied with "
            f"COPY in {time.perf_counter() - started:.1f} s ({sum(copied.values()):,} rows, then VACUUM ANALYZE "
            "and CHECKPOINT; not timed)",
            flush=True,
        )
        return _measure_and_compare(args, db, str(cached.npz), as_of)


def _measure_and_compare(args: argparse.Namespace, url: str, npz: str, as_of: date) -> int:
    ours = _in_fresh_process(measure_ours, url, as_of, args.repeats)
    best = min(ours["times"])
    parts = ours["parts"]
    reads = sum(v for k, v in parts.items() if k.startswith("read "))
    rows = ours["rows"]
    print(
        f"cohortbot: build_community_report as of {as_of.isoformat()}, {REPORT_WEEKS} weeks (history from "
        f"{ours['history_start']}): best {best:.2f} s of {_times(ours['times'])} (after a warm-up); "
        f"peak RSS {ours['peak'] / MB:,.0f} MB",
        flush=True,
    )
    print(
        f"  where the time goes (one more run, part by part): SQL reads {reads:.2f} s ("
        + ", ".join(f"{k[5:]} {v:.2f} s / {rows[k[5:]]:,} rows" for k, v in parts.items() if k.startswith("read "))
        + f"), build_report {parts['build_report']:.2f} s"
    )
    duck = _in_fresh_process(measure_duckdb, npz, as_of, args.repeats)
    duck_best = min(duck["times"])
    print(
        f"duckdb: {duck['counts']['events']:,} raw events loaded into memory in {duck['load_seconds']:.1f} s "
        f"(not compared); metrics best {duck_best:.2f} s of {_times(duck['times'])} (after a warm-up, "
        f"{duck['threads']} threads); peak RSS {duck['peak'] / MB:,.0f} MB (its own process)",
        flush=True,
    )

    problems = compare(ours["metrics"], duck["metrics"])
    names = sorted(ours["metrics"].keys() & duck["metrics"].keys())
    print(f"metrics compared ({len(names)}):")
    for line in _wrap(names):
        print(f"  {line}")
    ratio = best / duck_best
    peak_mb = ours["peak"] / MB
    if problems:
        print(f"check: cohortbot and duckdb DISAGREE on {len(problems)} of {len(names)} metrics:")
        for problem in problems:
            print(f"  {problem}")
        print(f"timings (not valid while the results differ): {best:.2f} s, {ratio:.2f}x duckdb, {peak_mb:.0f} MB")
        print(f"analytics: results differ from duckdb on {len(problems)} metric(s)")
        return 1
    print(f"check: cohortbot and duckdb agree on all {len(names)} metrics")
    print(
        f"targets: <= {TARGET_SECONDS:g} s {met(best <= TARGET_SECONDS)}; <= {TARGET_RATIO:g}x duckdb "
        f"{met(ratio <= TARGET_RATIO)}; <= {TARGET_PEAK_MB:,} MB peak {met(peak_mb <= TARGET_PEAK_MB)} "
        f"(load average now {load_average()})"
    )
    print(f"analytics: {best:.2f} s, {ratio:.2f}x duckdb, {peak_mb:.0f} MB peak")
    return 0
