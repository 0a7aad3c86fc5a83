"""Engine and session factory: the one place database connections are configured."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
WAL_AUTOCHECKPOINT_PAGES = 10_000
PAGE_CACHE_KIB = 65_536
_BEGIN_OPTION = "cohortbot_sqlite_begin"

BUSY_MESSAGE = "database is busy (held by another process); try again"
# user:password@ in any URL or libpq conninfo a driver message may quote, and password=... in a conninfo string.
_URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_CONNINFO_PASSWORD_RE = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def normalise_url(url: str) -> str:
    """Route PostgreSQL URLs to psycopg 3, the driver cohortbot installs (``postgres`` extra)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers (commands, analytics) never block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the last commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A writer's batch dirties hundreds of pages, most of them the same ones batch after batch (the current
        # day's rollup rows, index interior pages). With the default 1,000-page threshold every second commit
        # copied them back into the database file (two fsyncs); at 10,000 pages (~40 MB of WAL) a page is
        # checkpointed once per ~20 batches. Recovery after a crash replays at most that much WAL.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        # The default 2 MB page cache is smaller than what one batch touches (rollups, indexes); 64 MB keeps those
        # pages across the batches of the pooled writer connection. It is allocated only as pages are read.
        cursor.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers use deferred transactions (in WAL mode they never block the writer). Writers opt in to
        # IMMEDIATE through ``writing(engine)``: a deferred transaction that later wants to write can fail with
        # "database is locked" without waiting for the busy timeout.
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """Create the SQLAlchemy engine for a storage URL.

    Args:
        url: ``sqlite:///path.db``, ``sqlite://`` (in memory, tests only) or ``postgresql://...``.
        echo: Log every SQL statement (debugging).
        busy_timeout_ms: SQLite only: how long a writer waits for another process's write lock before it
            fails with "database is locked" (``[storage] busy_timeout_seconds``).

    Returns:
        A configured engine. SQLite gets WAL mode, a busy timeout and foreign keys (writers use ``writing()``);
        the folder of a SQLite file is created if missing.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # Keep connections pooled: closing the last connection to a WAL database checkpoints it (tens of
            # milliseconds), which would otherwise happen after every batch the writer commits.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory for short units of work (queries and admin actions, never held by handlers)."""
    return sessionmaker(engine, expire_on_commit=False)


def writing(engine: Engine) -> Engine:
    """The same engine, for transactions that write: on SQLite they take the write lock when they begin.

    Other backends ignore the option.
    """
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def mask_credentials(text: str) -> str:
    """``text`` with the passwords of any database URL or libpq conninfo in it replaced by ``***``."""
    text = _URL_PASSWORD_RE.sub(r"\1***@", text)
    return _CONNINFO_PASSWORD_RE.sub(r"\1***", text)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on another process's write lock after the busy timeout."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return "database is locked" in str(orig) or "database table is locked" in str(orig)


def database_error_line(exc: SQLAlchemyError, url: str) -> str:
    """One line that tells an operator what went wrong with the database, never with a password in it.

    Args:
        exc: The error a database call raised.
        url: The storage URL the engine was made from (shown without its password).

    Returns:
        ``BUSY_MESSAGE`` when another process held the SQLite write lock beyond the busy timeout; otherwise
        ``database <url>: <what the driver said>`` on one line (for an unreachable server, why it is unreachable).
    """
    if is_busy(exc):
        return BUSY_MESSAGE
    shown = make_url(url).render_as_string(hide_password=True)
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    # Driver messages span lines (libpq adds hints on a second line); SQLAlchemy's own add the SQL and a link.
    detail = " ".join(str(orig).split("\n[SQL:")[0].split())
    password = make_url(url).password
    if password:
        # Whole tokens only, so that a short password does not garble the words around it.
        detail = re.sub(rf"(?<!\w){re.escape(str(password))}(?!\w)", "***", detail)
    if detail.startswith(("connection failed", "connection to server", "could not connect")):
        return f"cannot connect to the database {shown}: {mask_credentials(detail)}"
    return f"database {shown}: {mask_credentials(detail)}"
