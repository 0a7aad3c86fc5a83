"""Batch statements of the PostgreSQL ingestion path: a batch's rows sent as one array per column.

A multi-row ``INSERT ... VALUES (%s, ...), (%s, ...) ...`` carries thousands of placeholders, and psycopg caches
its parse of a statement only up to 4,096 characters and 50 parameters: every batch re-parsed each such statement
in Python (43 % of the writer's time, docs/performance.md "PostgreSQL / Ingest"), and its text changed with every
batch size, so the server could not prepare it either. Here a batch is sent as

    INSERT INTO t (a, b, ...) SELECT * FROM unnest(%b::bigint[], %b::text[], ...) ON CONFLICT ... DO NOTHING ...

whose text depends on the table and columns only: psycopg parses it once and, from the fifth execution on, the
server runs it as a prepared statement. Each array is cast to its column's type (taken from the models), so an
all-NULL column, integers psycopg sends as ``smallint[]`` and ``timestamptz[]`` all arrive as the column expects.
The arrays are sent in binary (``%b``): psycopg's text form of an array quotes each string element with regular
expressions, three times slower than the binary form. ``unnest`` with several arrays yields their rows in order, so
the rows insert as a multi-row ``VALUES`` would, duplicates included (``DO NOTHING`` skips a repeated key within
one statement too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql

from storage.models import Base


class PgRows:
    """Array-parameter statements for PostgreSQL, built once per shape (one instance per writer)."""

    def __init__(self) -> None:
        """An empty statement cache."""
        self._dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        self._types: dict[tuple[str, str], str] = {}
        self._sql: dict[tuple[str, ...], str] = {}

    def array_type(self, table: str, column: str) -> str:
        """The SQL array type of a column of the models, e.g. ``BIGINT[]`` or ``TIMESTAMP WITH TIME ZONE[]``."""
        key = (table, column)
        sql_type = self._types.get(key)
        if sql_type is None:
            sql_type = Base.metadata.tables[table].c[column].type.compile(dialect=self._dialect) + "[]"
            self._types[key] = sql_type
        return sql_type

    def insert_sql(self, table: str, columns: str, conflict: str, returning: str | None) -> str:
        """``INSERT INTO table (columns) SELECT * FROM unnest(...) ON CONFLICT (conflict) DO NOTHING [RETURNING]``.

        Args:
            table: A table of the models.
            columns: Its columns, comma-separated, in the order of each row's values.
            conflict: The columns of the unique index that decides a duplicate.
            returning: What to return for each inserted row, or None to return nothing.
        """
        key = (table, columns, conflict, returning or "")
        sql = self._sql.get(key)
        if sql is None:
            names = [name.strip() for name in columns.split(",")]
            arrays = ", ".join(f"%b::{self.array_type(table, name)}" for name in names)
            sql = (
                f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
                f"ON CONFLICT ({conflict}) DO NOTHING"
            )
            if returning:
                sql += f" RETURNING {returning}"
            self._sql[key] = sql
        return sql

    def insert(
        self,
        cur: Any,
        table: str,
        columns: str,
        rows: Sequence[tuple[Any, ...]],
        conflict: str,
        returning: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` skipping duplicates of ``conflict``, in one statement; ``returning`` of the new rows.

        Args:
            cur: A psycopg cursor inside the caller's transaction.
            table: A table of the models.
            columns: Its columns, comma-separated, in the order of each row's values.
            rows: The rows (all of one length, matching ``columns``). None stands for NULL.
            conflict: The columns of the unique index that decides a duplicate.
            returning: What to return for each row actually inserted (a duplicate returns nothing), or None.

        Returns:
            The ``returning`` values of the inserted rows as tuples (empty when ``returning`` is None).
        """
        if not rows:
            return []
        # One list per column (psycopg adapts lists, not tuples, to arrays).
        arrays = [list(column) for column in zip(*rows, strict=True)]
        cur.execute(self.insert_sql(table, columns, conflict, returning), arrays)
        if not returning:
            return []
        fetched = cur.fetchall()
        # psycopg returns plain tuples by default; only copy rows of another type.
        return fetched if not fetched or type(fetched[0]) is tuple else [tuple(row) for row in fetched]
