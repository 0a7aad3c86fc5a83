"""Holding SQLite's write lock from another connection (a long import, a backup), with a short busy timeout."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event


def short_busy_timeout(engine: Engine, milliseconds: int) -> None:
    """Make every new connection of a SQLite engine give up on a held write lock after ``milliseconds``.

    Production waits 10 s; a test shortens it so that a write really fails while the lock is held.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:  # runs after the engine's own PRAGMAs
        dbapi_connection.execute(f"PRAGMA busy_timeout={milliseconds}")


@contextmanager
def write_locked(db_path: Path) -> Iterator[None]:
    """Hold the database's write lock (``BEGIN IMMEDIATE`` from another connection) until the block ends."""
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()
