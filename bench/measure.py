"""Process and file measurements, and the small option and report helpers, shared by the benchmarks."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
from pathlib import Path

MB = 1024 * 1024


def positive_int(text: str) -> int:
    """An option's value that must be a positive whole number (an ``argparse`` type)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, printed beside every figure measured on a shared machine."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def stored_community_id(db: Path, name: str) -> int:
    """The id of the community ``name`` in the SQLite file ``db``."""
    conn = sqlite3.connect(db)
    try:
        (cid,) = conn.execute("SELECT id FROM communities WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return int(cid)


def met(ok: bool) -> str:
    """How a benchmark report says whether a target was met: "met" or "MISSED"."""
    return "met" if ok else "MISSED"


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Resident set size right now (from /proc; 0 where that is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def sqlite_paths(db: Path) -> list[Path]:
    """A SQLite database file and its WAL and shared-memory companions."""
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def remove_sqlite(db: Path) -> None:
    """Delete a database file with its companions, so that a stale WAL cannot be replayed into a new copy."""
    for path in sqlite_paths(db):
        path.unlink(missing_ok=True)


def copy_database(source: Path, target: Path) -> None:
    """Copy a (checkpointed) database file and flush the copy to disk.

    Without the flush, the first checkpoint of the timed run would pay for writing back the whole copy: the
    kernel holds it as dirty pages, and ``fdatasync`` on the file waits for all of them.
    """
    remove_sqlite(target)
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint(db: Path) -> None:
    """Fold the WAL back into the database file and truncate it (what a quiet database settles to)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def size_on_disk(db: Path) -> int:
    """Bytes of the database file plus its WAL (the shared-memory index is not data and is left out)."""
    main, wal, _shm = sqlite_paths(db)
    return main.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def table_sizes(db: Path) -> list[tuple[str, int]]:
    """Bytes per table and index, largest first (``dbstat`` is compiled into CPython's SQLite)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return [(str(name), int(size)) for name, size in rows]
