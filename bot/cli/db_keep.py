"""``cohortbot db backup|verify|copy``: keep a community's database safe for years, and move it to PostgreSQL."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from analytics.formatting import plural
from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, existing_engine, load_config, require_schema
from storage.engine import database_error_line, mask_credentials


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit} ({n:,} bytes)"


def _print_counts(counts: dict[str, int]) -> None:
    width = max((len(t) for t in counts), default=0)
    for table, n in counts.items():
        print(f"  {table:<{width}}  {n:>10,}")


def _without_password(url: str) -> str:
    """A libpq URL for shell commands: no driver suffix and no password (pg_dump reads PGPASSWORD or ~/.pgpass)."""
    p = make_url(url)
    # URL.set(password=None) keeps the password (None means "unchanged" there): build the URL without one.
    bare = URL.create(p.get_backend_name(), p.username, None, p.host, p.port, p.database, p.query)
    return bare.render_as_string(hide_password=False)


def cmd_db_backup(args: argparse.Namespace) -> int:
    """Copy the SQLite database to PATH while the bot keeps running (SQLite's online backup)."""
    from storage.backup import BackupExistsError, backup_sqlite

    settings = load_config(args.config)
    url = make_url(settings.storage.url)
    if url.get_backend_name() != "sqlite":
        dump = _without_password(settings.storage.url)
        raise CommandError(
            f"[storage] url is {url.get_backend_name()} ({url.render_as_string(hide_password=True)}), not a SQLite "
            "file: back it up with the server's own tool while the bot runs, e.g.\n"
            f"  pg_dump --format=custom --file={shlex.quote(args.path)} {shlex.quote(dump)}\n"
            "and restore it into a new, empty database with\n"
            f"  pg_restore --no-owner --dbname=postgresql://.../NEW_DATABASE {shlex.quote(args.path)}\n"
            "(the password comes from PGPASSWORD or ~/.pgpass). Nothing was written."
        )
    engine = existing_engine(settings)
    try:
        result = backup_sqlite(engine, Path(args.path), force=args.force)
    except (BackupExistsError, ValueError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except OSError as exc:
        raise CommandError(f"cannot write the backup: {exc}") from exc
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot back up: {database_error_line(exc, settings.storage.url)}") from exc
    finally:
        engine.dispose()
    print(f"backed up {url.database} to {result.path}: {_size(result.size_bytes)}")
    _print_counts(result.row_counts)
    return EXIT_OK


def cmd_db_verify(args: argparse.Namespace) -> int:
    """Check the database: file integrity, schema revision, and rollups equal to a rebuild from raw events."""
    import sqlite3

    from storage.verify import verify_database

    settings = load_config(args.config)
    engine = existing_engine(settings)
    shown = make_url(settings.storage.url).render_as_string(hide_password=True)
    try:
        report = verify_database(engine)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        if isinstance(orig, sqlite3.DatabaseError) and not isinstance(orig, sqlite3.OperationalError):
            # "file is not a database", "database disk image is malformed": the file itself, not a lock.
            raise CommandError(
                f"{shown}: cannot read the file ({orig}): it is damaged or not a cohortbot database; "
                "stop the bot and restore the last backup (`cohortbot db backup` makes one)"
            ) from exc
        raise CommandError(f"cannot verify: {database_error_line(exc, settings.storage.url)}") from exc
    finally:
        engine.dispose()
    print(f"verifying {shown}")
    for line in report.checks:
        print(f"  ok    {line}")
    for line in report.problems:
        print(f"  FAIL  {line}")
    for line in report.notes:
        print(f"  note  {line}")
    if report.ok:
        print("the database is sound")
        return EXIT_OK
    print(f"{plural(len(report.problems), 'problem')} found")
    return EXIT_FAILED


def cmd_db_copy(args: argparse.Namespace) -> int:
    """Copy the SQLite database ([storage] url) into an empty PostgreSQL database, then check the copy."""
    import psycopg

    from storage.engine import make_engine
    from storage.transfer import TargetNotEmptyError, copy_sqlite_to_postgresql, sqlite_path

    settings = load_config(args.config)
    source = sqlite_path(settings.storage.url)
    if source is None:
        raise CommandError(
            "db copy moves a SQLite database to PostgreSQL: [storage] url must be a sqlite:/// file "
            f"(it is {make_url(settings.storage.url).render_as_string(hide_password=True)})",
            EXIT_USAGE,
        )
    try:
        target_url = make_url(args.to)
    except Exception as exc:  # SQLAlchemy raises ArgumentError for a malformed URL
        raise CommandError(f"--to: not a database URL: {mask_credentials(str(exc))}", EXIT_USAGE) from exc
    if target_url.get_backend_name() != "postgresql":
        raise CommandError("--to must be a postgresql://user@host/dbname URL", EXIT_USAGE)
    shown = target_url.render_as_string(hide_password=True)
    source_engine = existing_engine(settings)
    try:
        require_schema(source_engine)
    finally:
        source_engine.dispose()
    target = make_engine(args.to)
    print(f"copying {source} to {shown}")
    try:
        result = copy_sqlite_to_postgresql(source, target)
    except TargetNotEmptyError as exc:
        raise CommandError(f"{shown}: {exc}; copy into a new, empty database (nothing was changed)") from exc
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot copy: {database_error_line(exc, args.to)}") from exc
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())
        raise CommandError(
            f"cannot copy to {shown}: {mask_credentials(detail)} (the target was left unchanged)"
        ) from exc
    finally:
        target.dispose()
    width = max((len(t) for t in result.source_counts), default=0)
    print(f"  {'table':<{width}}  {'sqlite':>10}  {'postgresql':>10}")
    for table, n in result.source_counts.items():
        mark = "" if result.target_counts.get(table) == n else "  <- differs"
        print(f"  {table:<{width}}  {n:>10,}  {result.target_counts.get(table, 0):>10,}{mark}")
    for difference in result.rollup_differences:
        print(f"  FAIL  {difference.line()}")
    if not result.ok:
        tables = ", ".join(result.mismatched_tables) or "rollups"
        raise CommandError(f"the copy does not match the source ({tables}); keep using the SQLite file")
    print("row counts match, and the rollups on PostgreSQL equal a rebuild from the copied events")
    print(
        f'next: set [storage] url = "{_without_password(args.to)}" in your config (the password goes in '
        "PGPASSWORD or ~/.pgpass) and start the bot again; keep the SQLite file as a backup"
    )
    return EXIT_OK
