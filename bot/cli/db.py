"""``cohortbot db``: create or migrate the schema, show its revision, rebuild the rollups."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import SQLAlchemyError

from analytics.formatting import plural
from bot.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    busy_timeout_ms,
    existing_engine,
    load_config,
    require_schema,
)
from storage.engine import database_error_line


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or migrate the database named in ``[storage] url``."""
    from storage.engine import make_engine
    from storage.migrate import current_revision, head_revision, upgrade

    settings = load_config(args.config)
    engine = make_engine(settings.storage.url, busy_timeout_ms=busy_timeout_ms(settings))
    shown = engine.url.render_as_string(hide_password=True)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot migrate: {database_error_line(exc, settings.storage.url)}") from exc
    finally:
        engine.dispose()
    if before == after:
        print(f"{shown}: already at schema revision {after} (newest: {head_revision()})")
    else:
        print(f"{shown}: upgraded from {before or 'an empty database'} to schema revision {after}")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    """Show the schema revision of the database and whether it needs an upgrade."""
    from storage.migrate import current_revision, head_revision

    settings = load_config(args.config)
    engine = existing_engine(settings)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot read: {database_error_line(exc, settings.storage.url)}") from exc
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "needs `cohortbot db upgrade`"
    print(f"{shown}: schema revision {current or 'none'}, newest {head}: {state}")
    return EXIT_OK if current == head else EXIT_FAILED


def cmd_db_rebuild_rollups(args: argparse.Namespace) -> int:
    """Recompute every rollup from raw events (after changing ``[community] timezone``)."""
    from storage.engine import writing
    from storage.ingest import IngestStore
    from storage.rollups import rebuild_rollups

    settings = load_config(args.config)
    engine = existing_engine(settings)
    require_schema(engine)
    store = IngestStore(engine)
    community_id = store.register_community(settings.community.name, settings.community.timezone)
    with writing(engine).begin() as conn:
        snapshot = rebuild_rollups(conn, community_id)
    engine.dispose()
    print(
        f"rebuilt rollups of {settings.community.name!r} in {settings.community.timezone}: "
        f"{plural(len(snapshot.community_days), 'day')}, {plural(len(snapshot.member_totals), 'active member')}"
    )
    return EXIT_OK
