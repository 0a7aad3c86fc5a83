"""Moving a community from its SQLite file to PostgreSQL (``cohortbot db copy``).

Every table is copied with its ids, parents before children, in batches through PostgreSQL's ``COPY``; the id
sequences are then moved past the copied ids so that the bot continues where the SQLite file left off. SQLite keeps
timestamps as integer milliseconds (``storage.types``): SQLite's own ``strftime`` turns them into UTC text that
PostgreSQL reads back exactly, to the millisecond. The whole copy is one PostgreSQL transaction: a failure leaves
the target as empty as it was.

The source is read inside one SQLite read transaction, so the copy is one consistent instant even if a bot still
writes; whatever it writes afterwards stays behind in the SQLite file (stop the bot first).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, inspect, text
from sqlalchemy.engine import make_url

from analytics.formatting import plural
from storage.migrate import upgrade
from storage.models import Base
from storage.types import UTCDateTime
from storage.verify import RollupDifference, rollup_differences

BATCH_ROWS = 20_000  # rows fetched from SQLite and sent per round of the copy
_MS_TO_TEXT = "strftime('%Y-%m-%d %H:%M:%f', \"{0}\" / 1000.0, 'unixepoch')"


class TargetNotEmptyError(RuntimeError):
    """The PostgreSQL database already holds cohortbot data; copying into it would mix two communities' ids."""


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What ``copy_sqlite_to_postgresql`` copied and what it found when it checked the target."""

    source_counts: dict[str, int]  # table -> rows in the source snapshot, in foreign-key order
    target_counts: dict[str, int]  # table -> rows in the target after the copy
    rollup_differences: list[RollupDifference]  # the target's rollups against a rebuild from its raw events

    @property
    def mismatched_tables(self) -> list[str]:
        """Tables whose row counts differ between source and target."""
        return [t for t, n in self.source_counts.items() if self.target_counts.get(t) != n]

    @property
    def ok(self) -> bool:
        """Whether every table has the same rows and the target's rollups equal a rebuild."""
        return not self.mismatched_tables and not self.rollup_differences


def _table_rows(engine: Engine) -> dict[str, int]:
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar_one())
            for t in Base.metadata.sorted_tables
            if t.name in present
        }


def target_data(engine: Engine) -> dict[str, int]:
    """The cohortbot tables of ``engine``'s database that hold rows (empty for a new or freshly migrated one)."""
    return {name: n for name, n in _table_rows(engine).items() if n}


def _integer_id(table: Table) -> bool:
    try:
        return "id" in table.c and table.c.id.type.python_type is int
    except NotImplementedError:
        return False


def copy_table(src: sqlite3.Connection, cur: Any, table: Table) -> int:
    """Copy one table's rows from SQLite into PostgreSQL with ``COPY``, ids kept, and move its id sequence on.

    Timestamps (integer milliseconds in SQLite) travel as UTC text, exactly: ``cur``'s session must be in UTC.

    Args:
        src: The SQLite connection (its open read transaction, if any, is the instant copied).
        cur: A psycopg cursor on the target; the caller commits.
        table: The table (it must exist on both sides at the same schema revision).

    Returns:
        Rows copied.
    """
    present = {r[1] for r in src.execute(f'PRAGMA table_info("{table.name}")')}
    columns = [c for c in table.columns if c.name in present]
    if not columns:
        return 0  # not in the source (an older file): nothing to copy
    exprs = [_MS_TO_TEXT.format(c.name) if isinstance(c.type, UTCDateTime) else f'"{c.name}"' for c in columns]
    quoted = ", ".join(f'"{c.name}"' for c in columns)
    rows = src.execute(f'SELECT {", ".join(exprs)} FROM "{table.name}"')
    n = 0
    with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        while batch := rows.fetchmany(BATCH_ROWS):
            for row in batch:
                copy.write_row(row)
            n += len(batch)
    if _integer_id(table):
        # setval refuses 0, and an empty table has nothing to continue after: leave its sequence at 1.
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), max(id)) FROM \"{table.name}\" "
            "HAVING max(id) IS NOT NULL"
        )
    return n


def copy_sqlite_to_postgresql(
    source: Path, target: Engine, *, progress: Callable[[str, int], None] | None = None
) -> CopyResult:
    """Copy a cohortbot SQLite database (at the newest schema) into an empty PostgreSQL database.

    Args:
        source: The SQLite file.
        target: An engine on the PostgreSQL database; it is migrated to the newest schema first.
        progress: Called with each table's name and rows once it is copied.

    Returns:
        Rows per table on both sides, and the target's rollup differences from a rebuild (empty when equal).

    Raises:
        TargetNotEmptyError: A cohortbot table of the target holds rows (nothing was changed).
    """
    import psycopg

    held = target_data(target)
    if held:
        raise TargetNotEmptyError(
            "the target already holds data (" + ", ".join(f"{t}: {plural(n, 'row')}" for t, n in held.items()) + ")"
        )
    upgrade(target)
    conninfo = target.url.set(drivername="postgresql").render_as_string(hide_password=False)
    counts: dict[str, int] = {}
    src = sqlite3.connect(source, isolation_level=None)
    try:
        # One read transaction over every table: a consistent instant, whatever a running bot writes meanwhile.
        src.execute("BEGIN")
        present = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with psycopg.connect(conninfo) as pg, pg.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")  # the copied timestamps are UTC wall-clock text
            for table in Base.metadata.sorted_tables:  # parents before children: foreign keys hold throughout
                if table.name not in present:
                    continue
                # Counted in the same snapshot the copy reads: what the target must hold afterwards.
                counts[table.name] = int(src.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0])
                copied = copy_table(src, cur, table)
                if progress is not None:
                    progress(table.name, copied)
            pg.commit()
        src.execute("COMMIT")
    finally:
        src.close()
    target_counts = _table_rows(target)
    with target.execution_options(isolation_level="REPEATABLE READ").connect() as conn:
        differences = rollup_differences(conn)
        conn.rollback()
    return CopyResult(counts, {t: target_counts.get(t, 0) for t in counts}, differences)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another backend or an in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "").expanduser()
