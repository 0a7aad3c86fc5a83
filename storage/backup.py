"""Online backup of a SQLite database, consistent while the bot keeps writing.

SQLite's backup API copies the database as one read transaction sees it: in WAL mode that read never blocks the
bot's writer, and the writer never changes what the backup reads, so the copy is a snapshot of one instant (every
batch the writer committed before it, none after). Copying the file with ``cp`` instead could catch a half-written
page or miss the WAL file that holds the newest commits.

The copy is written beside the destination under a temporary name and renamed into place only when complete, so
an interrupted backup never leaves a truncated file where the last good one was.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from storage.models import Base


class BackupExistsError(FileExistsError):
    """The destination exists and overwriting was not asked for."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a finished backup wrote."""

    path: Path
    size_bytes: int
    row_counts: dict[str, int]  # table -> rows in the copy, in foreign-key order


def sqlite_row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per cohortbot table of an open SQLite database (tables it does not have are left out)."""
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {
        t.name: int(conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0])
        for t in Base.metadata.sorted_tables
        if t.name in present
    }


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is: without this a power cut could undo it.
    with contextlib.suppress(OSError):  # some filesystems do not allow opening a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def backup_sqlite(engine: Engine, destination: Path, *, force: bool = False) -> BackupResult:
    """Copy the SQLite database behind ``engine`` to ``destination`` with SQLite's online backup API.

    Args:
        engine: An engine on a SQLite file (the bot may be writing to it meanwhile).
        destination: The backup file to create.
        force: Replace ``destination`` if it exists.

    Returns:
        The path, the size in bytes and the rows per table of the copy.

    Raises:
        BackupExistsError: ``destination`` exists and ``force`` is false (nothing was written).
        ValueError: ``engine`` is not on a SQLite file, or ``destination`` is that file.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        raise ValueError("the online backup works on a SQLite file only")
    destination = destination.expanduser().absolute()
    live = Path(engine.url.database or "").expanduser().resolve()
    if destination.resolve() in {live, live.with_name(live.name + "-wal"), live.with_name(live.name + "-shm")}:
        # With --force this would swap the live file under a running bot, which keeps writing to the old one.
        raise ValueError(f"{destination} is the database itself; back it up to another file")
    if destination.exists() and not force:
        raise BackupExistsError(f"{destination} exists; pass --force to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        target = sqlite3.connect(partial, isolation_level=None)
        try:
            # pages=-1 (the default): the whole database in one step, inside one read transaction. Stepwise
            # copying would restart whenever another process commits, and might never finish under load.
            source.backup(target)
            # The copy is a single self-contained file (no -wal/-shm beside it), easy to move and to restore.
            target.execute("PRAGMA journal_mode=DELETE")
            counts = sqlite_row_counts(target)
        finally:
            target.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        raw.close()
    with open(partial, "rb+") as fh:
        os.fsync(fh.fileno())
    if destination.exists() and not force:  # created while the copy ran
        partial.unlink(missing_ok=True)
        raise BackupExistsError(f"{destination} exists; pass --force to replace it")
    os.replace(partial, destination)
    _fsync_dir(destination.parent)
    return BackupResult(destination, destination.stat().st_size, counts)
