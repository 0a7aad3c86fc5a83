"""What both sides of ``python -m bench analytics`` share: the targets, the report range, timing and memory."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from bench.measure import peak_rss_bytes, positive_int

DEFAULT_WORKDIR = Path(__file__).resolve().parents[1] / ".cache"  # bench/.cache


def add_community_arguments(
    parser: argparse.ArgumentParser, *, seed_help: str = "random seed of the community", workdir_note: str = ""
) -> None:
    """The synthetic community's options, shared by every benchmark that runs on it (analytics, dashboard, commands).

    Args:
        parser: The benchmark's parser.
        seed_help: What ``--seed`` seeds (some benchmarks also sample members with it).
        workdir_note: What else the benchmark keeps in ``--workdir``, appended to its help.
    """
    parser.add_argument("--members", type=positive_int, default=100_000, help="human members (default 100,000)")
    parser.add_argument(
        "--events", type=positive_int, default=20_000_000, help="messages and reactions (default 20,000,000)"
    )
    parser.add_argument(
        "--history-weeks", type=positive_int, default=52, help="weeks of history the events span (default 52)"
    )
    parser.add_argument("--seed", type=int, default=1, help=f"{seed_help} (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the generated community is cached (default bench/.cache)" + workdir_note,
    )


REPORT_WEEKS = 12  # what `cohortbot report` shows by default, and what the digest computes
INACTIVE_AFTER_DAYS = 14
TOP_N = 10

TARGET_SECONDS = 5.0
TARGET_RATIO = 3.0
TARGET_PEAK_MB = 1024

REL_TOL = 1e-9
RANKED = ("at_risk", "top_members")  # member lists ordered by score: near-ties may come in either order

T = TypeVar("T")


# The per-course figures both sides compute (fields of analytics.results.CourseSales), compared one by one.
COURSE_FIELDS = (
    "course",
    "currency",
    "title",
    "sales",
    "buyers",
    "refunds",
    "gross",
    "refunded",
    "net",
    "refund_rate",
    "price",
    "sales_per_sale_week",
    "sale_weeks",
    "price_points",
    "arc_elasticity",
)


# --- the report range ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """Day numbers (days since 1970-01-01, local) of everything the metrics need, derived from ``as_of``."""

    as_of: date
    end: int  # as_of
    first_monday: int  # the report range's first Monday
    weeks: int
    observed_weeks: int  # weeks of the range that are complete by as_of
    activation_first: int  # the report's activation pools the joiners of these days
    activation_last: int
    score_from: int  # the first day of history the report loads (its engagement score sums from there)

    @classmethod
    def of(cls, as_of: date, weeks: int, lookback_days: int) -> Plan:
        epoch = date(1970, 1, 1)
        monday = as_of - timedelta(days=as_of.weekday())
        first_monday = monday - timedelta(weeks=weeks - 1)
        last_complete = monday if as_of.weekday() == 6 else monday - timedelta(weeks=1)
        activation_first = last_complete - timedelta(weeks=3)
        activation_last = min(last_complete + timedelta(days=6), as_of)
        # As analytics.report.history_start: the MAU of the range's first days needs the 27 days before it.
        history_start = min(first_monday - timedelta(days=27), as_of - timedelta(days=lookback_days))
        return cls(
            as_of=as_of,
            end=(as_of - epoch).days,
            first_monday=(first_monday - epoch).days,
            weeks=weeks,
            observed_weeks=(last_complete - first_monday).days // 7 + 1,
            activation_first=(activation_first - epoch).days,
            activation_last=(activation_last - epoch).days,
            score_from=(history_start - epoch).days,
        )

    def week_label(self, index: int) -> str:
        year, week, _ = (date(1970, 1, 1) + timedelta(days=self.first_monday + 7 * index)).isocalendar()
        return f"{year}-W{week:02d}"


def best_of(run: Callable[[], T], repeats: int) -> tuple[list[float], T]:
    """One warm-up run, then ``repeats`` timed runs; the seconds of each and the last result."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return times, result


def reset_peak_memory() -> bool:
    """Reset this process's resident high-water mark (Linux ``/proc/self/clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_memory_bytes() -> int:
    """This process's resident high-water mark since it started or since :func:`reset_peak_memory`.

    ``VmHWM`` belongs to the current address space, so nothing of a parent's memory leaks in; where /proc is
    unavailable, ``ru_maxrss`` is the fallback.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()
