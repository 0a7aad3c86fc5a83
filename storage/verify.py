"""Health of a database: file integrity, foreign keys, schema revision, and rollups that match their raw events.

Every rollup can be recomputed from the raw rows (``storage.rollups.compute_rollups``, the reference definition);
a rollup that differs from that recomputation is a bug or a hand edit, and every figure read from it is wrong.
The check reads everything inside one read transaction (a snapshot), so a bot writing meanwhile cannot make the
stored and the recomputed values disagree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError

from analytics.formatting import plural
from storage.migrate import current_revision, head_revision
from storage.models import Community
from storage.rollups import RollupSnapshot, compute_rollups, read_rollups

# Which table each part of a rollup snapshot is stored in (memberships are columns of ``members``).
SNAPSHOT_TABLES = {
    "member_days": "member_daily_activity",
    "member_totals": "member_activity",
    "community_days": "community_daily_totals",
    "memberships": "members",
    "channel_days": "channel_daily_activity",
    "hours": "community_hourly_activity",
    "channel_members": "channel_member_daily",
}
_MAX_INTEGRITY_LINES = 10


@dataclass(frozen=True, slots=True)
class RollupDifference:
    """One rollup table whose stored rows differ from a rebuild from raw events."""

    community: str
    table: str
    stored_rows: int
    rebuilt_rows: int
    differing_rows: int  # keys missing on either side, or present on both with other values
    first_key: Any
    stored_value: Any  # None when the row is missing from the stored table
    rebuilt_value: Any  # None when a rebuild would not have the row

    def line(self) -> str:
        """The difference as one line for an operator."""
        return (
            f"rollups of {self.community!r}: {self.table} differs from a rebuild from raw events "
            f"({self.differing_rows} of {max(self.stored_rows, self.rebuilt_rows)} rows; stored {self.stored_rows} "
            f"rows, rebuild {self.rebuilt_rows}); first: {_show(self.first_key)} stored {_show(self.stored_value)}, "
            f"rebuild {_show(self.rebuilt_value)}"
        )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify_database`: ``problems`` empty means the database is sound."""

    checks: list[str]  # what passed, one line each
    notes: list[str]  # what was not checked, and why
    problems: list[str]  # what failed, one line each

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if value is None:
        return "missing"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def compare_snapshots(community: str, stored: RollupSnapshot, rebuilt: RollupSnapshot) -> list[RollupDifference]:
    """The rollup tables of one community whose stored rows differ from the rebuilt ones."""
    differences = []
    for f in fields(RollupSnapshot):
        a: Mapping[Any, Any] = getattr(stored, f.name)
        b: Mapping[Any, Any] = getattr(rebuilt, f.name)
        if a == b:
            continue
        keys = sorted((k for k in a.keys() | b.keys() if a.get(k) != b.get(k)), key=repr)
        first = keys[0]
        differences.append(
            RollupDifference(
                community, SNAPSHOT_TABLES[f.name], len(a), len(b), len(keys), first, a.get(first), b.get(first)
            )
        )
    return differences


def rollup_differences(conn: Connection) -> list[RollupDifference]:
    """Every community's rollup tables that differ from a rebuild from raw events (read-only)."""
    differences = []
    for community_id, name in conn.execute(select(Community.id, Community.name).order_by(Community.id)):
        differences += compare_snapshots(name, read_rollups(conn, community_id), compute_rollups(conn, community_id))
    return differences


def _sqlite_checks(conn: Connection, checks: list[str], problems: list[str]) -> bool:
    """Run SQLite's own checks; False when the file is too damaged to read on."""
    try:
        rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check")]
    except DBAPIError as exc:
        # A page too broken to walk makes the check itself fail ("database disk image is malformed").
        if not isinstance(exc.orig, sqlite3.DatabaseError) or isinstance(exc.orig, sqlite3.OperationalError):
            raise
        problems.append(f"integrity_check: the file is damaged ({exc.orig}): stop the bot and restore the last backup")
        return False
    if rows == ["ok"]:
        checks.append("integrity_check: ok")
    else:
        # One result row can hold many lines (one per damaged cell); the first few locate the damage.
        lines = [line for row in rows for line in row.splitlines() if line.strip() and not line.startswith("***")]
        shown = lines[:_MAX_INTEGRITY_LINES]
        more = f" (and {len(lines) - len(shown)} more)" if len(lines) > len(shown) else ""
        # integrity_check stops after 100 findings: then there are at least that many.
        count = plural(len(lines), "problem") if len(rows) < 100 else f"at least {len(lines)} problems"
        problems.append(
            f"integrity_check: the file is damaged, {count}{more}: "
            + "; ".join(shown)
            + "; stop the bot and restore the last backup"
        )
        return False
    broken: dict[str, int] = {}
    for table, _rowid, parent, _fk in conn.exec_driver_sql("PRAGMA foreign_key_check"):
        broken[f"{table} -> {parent}"] = broken.get(f"{table} -> {parent}", 0) + 1
    if broken:
        problems.append(
            "foreign_key_check: rows that point at missing rows: "
            + ", ".join(f"{link}: {n}" for link, n in sorted(broken.items()))
        )
    else:
        checks.append("foreign_key_check: ok")
    return True


def verify_database(engine: Engine) -> VerifyReport:
    """Check a cohortbot database without changing it.

    SQLite: ``PRAGMA integrity_check`` and ``foreign_key_check``. PostgreSQL checksums its own pages and enforces
    foreign keys on every write, so those two are skipped there (with a note). Both: the schema is at the newest
    revision, and every community's rollups equal a rebuild from its raw events.

    Args:
        engine: The database to check (the bot may be running).

    Returns:
        What passed, what was skipped and what failed, one line each.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The database cannot be read at all (a damaged or foreign file, no server).
    """
    checks: list[str] = []
    notes: list[str] = []
    problems: list[str] = []
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        with engine.connect() as conn:
            if not _sqlite_checks(conn, checks, problems):
                # Reading rollups from a damaged file would fail or mislead: the damage is the finding.
                return VerifyReport(checks, notes, problems)
    else:
        notes.append(
            f"{engine.dialect.name}: integrity_check and foreign_key_check are SQLite checks (the server "
            "enforces foreign keys itself); skipped"
        )
    current, head = current_revision(engine), head_revision()
    if current != head:
        problems.append(
            f"schema revision {current or 'none'}, newest {head}: run `cohortbot db upgrade` (rollups not checked)"
        )
        return VerifyReport(checks, notes, problems)
    checks.append(f"schema: at the newest revision {head}")
    # One snapshot for every read: REPEATABLE READ on PostgreSQL, a deferred read transaction on SQLite (WAL).
    reader = engine if sqlite else engine.execution_options(isolation_level="REPEATABLE READ")
    with reader.connect() as conn:
        communities = conn.execute(text("SELECT count(*) FROM communities")).scalar_one()
        differences = rollup_differences(conn)
        conn.rollback()
    problems += [d.line() + "; fix: `cohortbot db rebuild-rollups`" for d in differences]
    if not differences:
        checks.append(f"rollups: equal to a rebuild from raw events ({plural(communities, 'community')})")
    return VerifyReport(checks, notes, problems)
