"""Which process runs the scheduled jobs when several share one database.

PostgreSQL: a session-level advisory lock (:class:`LeaderLock`) held on a connection of its own for the life of
the process. The server releases it the moment that session ends, so a leader that is SIGKILLed (its socket
closes) or cut off from the database stops being the leader without doing anything, and another process's next
``pg_try_advisory_lock`` succeeds.

SQLite: one process per database file. :class:`SqliteFileLock` is an OS lock (``flock``) on ``<db>.lock``, held for
the life of the process and released by the kernel however the process ends.

Pure database/OS code: the retry loop and what leading means live in ``bot/leadership.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

_KEY_PREFIX = b"cohortbot leader\x00"
# The server's TCP keepalive on the lock's session: a leader whose host vanished (power cut, network gone: no FIN,
# no RST) is noticed after about idle + interval x count = 20 s instead of the OS default of two hours, so the lock
# is free well within the 30 s a follower has to take over. Ignored on a Unix socket (nothing to lose there).
KEEPALIVE_SETTINGS = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


class AlreadyRunningError(RuntimeError):
    """Another process holds the SQLite database's process lock (``cohortbot run`` is already running on it)."""


def leader_key(community: str, schema: str) -> int:
    """The advisory-lock key of a community: the same in every process, whatever its Python hash seed.

    Args:
        community: The ``[community] name``.
        schema: The PostgreSQL schema the tables live in (``current_schema()``): two deployments in two schemas
            of one database are two different communities and must not wait for each other.

    Returns:
        A signed 64-bit integer, as ``pg_try_advisory_lock(bigint)`` takes it.
    """
    digest = hashlib.blake2b(_KEY_PREFIX + f"{schema}\x00{community}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LeaderLock:
    """The PostgreSQL advisory lock that makes one process the leader of a community.

    The lock lives on a connection detached from the engine's pool: closing it really ends the session (which
    releases the lock), and a pooled connection handed back with the lock still held can never happen.

    Blocking: call the methods from a worker thread (``asyncio.to_thread``).

    Args:
        engine: A PostgreSQL engine (the app's; only one extra connection is taken from it).
        community: The community name the key is derived from.
    """

    def __init__(self, engine: Engine, community: str) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"an advisory lock needs PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self.community = community
        self.key: int | None = None
        self._conn: Connection | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this process believed it held the lock at the last acquire or check."""
        return self._held

    def try_acquire(self) -> bool:
        """Take the lock if no other session holds it; never waits for it.

        Returns:
            True when this process holds the lock now (also when it already did).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database cannot be reached (the connection is dropped).
        """
        if self._held:
            return True
        try:
            conn = self._connection()
            self._held = bool(conn.execute(text("select pg_try_advisory_lock(:key)"), {"key": self.key}).scalar_one())
        except Exception:
            self.drop()
            raise
        return self._held

    def still_held(self) -> bool:
        """Ask the database whether the session holding the lock is alive (a heartbeat).

        Returns:
            False, with the connection dropped, when the session ended (server restart, network cut, a killed
            backend): the lock is gone and another process may already lead.
        """
        if not self._held or self._conn is None:
            return False
        try:
            # The session-level lock lives exactly as long as this session: a round trip proves both.
            self._conn.execute(text("select 1")).scalar_one()
        except Exception as exc:
            log.warning("the leader lock's database connection failed: %s", " ".join(str(exc).split())[:300])
            self.drop()
            return False
        return True

    def release(self) -> None:
        """Give the lock up (a clean stop) and close its connection; harmless when not held."""
        conn = self._conn
        if conn is not None and self._held:
            try:
                conn.execute(text("select pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception as exc:  # closing the session below releases it anyway
                log.debug("unlocking the leader lock failed: %s", exc)
        self.drop()

    def drop(self) -> None:
        """Close the lock's connection without unlocking: the server releases the lock as the session ends."""
        conn, self._conn = self._conn, None
        self._held = False
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # a dead connection may fail to close; it is gone either way
                log.debug("closing the leader lock's connection failed: %s", exc)

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # Out of the pool: closing it ends the session (and the lock) instead of parking it, lock held, in the
            # pool for some other query to borrow.
            conn.detach()
            try:
                for name, value in KEEPALIVE_SETTINGS.items():
                    conn.execute(text(f"set {name} = {int(value)}"))
                schema = str(conn.execute(text("select current_schema()")).scalar_one())
            except Exception:
                conn.close()
                raise
            self.key = leader_key(self.community, schema)
            self._conn = conn
        return self._conn


def sqlite_lock_path(url: str) -> Path | None:
    """Where the process lock of a SQLite database lives (``<db>.lock``); None for memory or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(path.name + ".lock")


class SqliteFileLock:
    """One ``cohortbot run`` per SQLite file: an exclusive ``flock`` on ``<db>.lock`` for the life of the process.

    The kernel drops the lock when the file is closed or the process ends in any way (a crash, SIGKILL), so a
    stale lock file never blocks a restart. One-shot commands do not take it: they may run beside the bot.

    Args:
        path: The lock file (see :func:`sqlite_lock_path`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            AlreadyRunningError: Another process holds it; the message names that process when it wrote its id.
        """
        import fcntl  # POSIX only; imported here so that importing storage works elsewhere

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (process {holder})" if holder else ""
            raise AlreadyRunningError(
                f"another cohortbot is already running on this SQLite database{who}: {self.path} is locked. "
                "SQLite supports one running bot per database file; stop the other one first, or move to "
                "PostgreSQL to run several processes"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Release the lock (closing the file releases it)."""
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()
