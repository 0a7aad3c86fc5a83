"""PostgreSQL for the benchmarks: a scratch database on a given server, and bulk loading from a SQLite file.

``--url`` names a *server* (user, password, host, port): the benchmark creates its own database there,
``cohortbot_bench_<pid>``, and drops it when it ends (on success, on an error, on Ctrl-C or SIGTERM). The
database part of the URL, if any, is only where it connects to run ``CREATE DATABASE`` / ``DROP DATABASE``
(``postgres`` when the URL names none); nothing in it is read or written. The user needs the right to create
databases (``CHECKPOINT`` before the timed runs is skipped when the user may not run it).

Loading copies every table of a cohortbot SQLite database (the benchmarks' cached, generated data) into a
migrated PostgreSQL schema with ``COPY ... FROM STDIN``: SQLite's integer milliseconds become ``timestamptz``
(converted by SQLite's own ``strftime``, exact to the millisecond), 0/1 become booleans, and the id sequences
are moved past the copied ids, so that the bot's writer continues exactly where the SQLite file left off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy.engine import URL, make_url

from storage.engine import make_engine, normalise_url
from storage.migrate import upgrade

PREFIX = "cohortbot_bench_"


def is_postgres(url: str | None) -> bool:
    """Whether a ``--url`` names a PostgreSQL server."""
    return url is not None and make_url(url).get_backend_name() == "postgresql"


def _server(url: str) -> URL:
    parsed = make_url(normalise_url(url))
    return parsed.set(database=parsed.database or "postgres")


def conninfo(url: str) -> str:
    """The libpq URI (for ``psycopg.connect``) of a SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def shown(url: str) -> str:
    """A URL as the report prints it: no password."""
    return make_url(url).render_as_string(hide_password=True)


def with_schema(url: str, schema: str) -> str:
    """The same database, with ``schema`` first on the search path (how the benchmark keeps two copies apart)."""
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(conninfo(_server(url).render_as_string(hide_password=False)), autocommit=True)


def server_version(url: str) -> str:
    """``server_version`` of the server a URL names."""
    with _admin(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def _drop(conn: Any, name: str) -> None:
    # WITH (FORCE) (PostgreSQL 13+): a connection left behind by a failed run must not keep the database alive.
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_abandoned(url: str) -> list[str]:
    """Drop the scratch databases of benchmark runs whose process is gone (a SIGKILL skips any cleanup)."""
    dropped = []
    with _admin(url) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'cohortbot_bench_%'")]
        for name in names:
            pid = name[len(PREFIX) :].split("_")[0]
            if pid.isdigit() and not _running(int(pid)):
                _drop(conn, name)
                dropped.append(name)
    return dropped


class _Terminated(BaseException):
    """SIGTERM, raised as an exception so that ``finally`` blocks (the database drop) run."""


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise _Terminated(f"terminated by signal {signum}")


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """Create ``cohortbot_bench_<pid>`` on the server ``url`` names; yield its URL; drop it at the end.

    Args:
        url: ``postgresql://user[:password]@host[:port][/maintenance database]``.

    Yields:
        The SQLAlchemy URL of the new, empty database.
    """
    drop_abandoned(url)
    name = f"{PREFIX}{os.getpid()}"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with _admin(url) as conn:
            _drop(conn, name)
            conn.execute(f'CREATE DATABASE "{name}"')
        yield _server(url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with _admin(url) as conn:
                _drop(conn, name)
        finally:
            signal.signal(signal.SIGTERM, previous)


def database_exists(url: str, name: str) -> bool:
    """Whether the server ``url`` names has a database called ``name``."""
    with _admin(url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def create_schema(url: str, schema: str) -> str:
    """Create ``schema`` in the database ``url`` names, migrate it with storage's migrations; return its URL."""
    import psycopg

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    target = with_schema(url, schema)
    engine = make_engine(target)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return target


def copy_from_sqlite(source: Path, url: str, tables: Sequence[str] | None = None) -> dict[str, int]:
    """Copy the rows of a cohortbot SQLite database into the migrated (empty) PostgreSQL database at ``url``.

    Args:
        source: The SQLite file.
        url: A PostgreSQL URL whose search path leads to a schema migrated to the same revision.
        tables: Only these tables (default: every table of the models that has rows).

    Returns:
        Rows copied per table.
    """
    import psycopg

    from storage.models import Base
    from storage.transfer import copy_table

    copied: dict[str, int] = {}
    src = sqlite3.connect(source)
    try:
        with psycopg.connect(conninfo(url)) as pg, pg.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")  # the copied timestamps are UTC wall-clock text
            for table in Base.metadata.sorted_tables:  # parents before children: foreign keys hold throughout
                if tables is not None and table.name not in tables:
                    continue
                if n := copy_table(src, cur, table):
                    copied[table.name] = n
            pg.commit()
    finally:
        src.close()
    settle(url)
    return copied


def settle(url: str) -> float:
    """``VACUUM ANALYZE`` (statistics and visibility map, as autovacuum leaves a settled database) and
    ``CHECKPOINT`` (so that a timed run does not pay for writing back the bulk load). Returns the seconds."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # Without superuser (or pg_checkpoint) rights, a timed run may pay for part of the write-back.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def schema_bytes(url: str, schema: str) -> int:
    """Bytes on disk of every table of ``schema``, with its indexes and TOAST."""
    import psycopg

    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0]) if row else 0
