"""``cohortbot import``: history from Discord and Telegram exports."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from bot.cli.common import (
    EXIT_OK,
    CommandError,
    existing_engine,
    load_config,
    require_schema,
)
from bot.config import Settings

if TYPE_CHECKING:
    from bot.importers.runner import ImportSummary
    from storage.ingest import IngestStore


def _importer_store(
    args: argparse.Namespace, settings: Settings | None = None
) -> tuple[Engine, IngestStore, str, Settings]:
    from storage.communities import find_community
    from storage.ingest import IngestStore

    if settings is None:
        settings = load_config(args.config)
    engine = existing_engine(settings)
    require_schema(engine)
    community = args.community or settings.community.name
    with engine.connect() as conn:
        existing = find_community(conn, community)
    # An existing community keeps the zone its rollups were bucketed in; a new one takes the config's.
    timezone = existing.timezone if existing else settings.community.timezone
    store = IngestStore(engine, store_text=settings.storage.store_text)
    store.register_community(community, timezone)
    return engine, store, community, settings


def _run_import(engine: Engine, run: Callable[[], ImportSummary]) -> int:
    """Run one import, print its summary line and close the database; an import error becomes a command error."""
    from bot.importers.runner import ExportImportError

    try:
        summary = run()
    except ExportImportError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        engine.dispose()
    print(summary.line())
    return EXIT_OK


def cmd_import_discord(args: argparse.Namespace) -> int:
    """Import DiscordChatExporter CSV or JSON exports (files or folders); safe to run again."""
    from bot.importers.progress import Progress
    from bot.importers.runner import DiscordImport

    settings = load_config(args.config)
    community = args.community or settings.community.name
    paths = [Path(p) for p in args.paths]
    # The files start parsing (in a second process, when that pays) while the database is opened and checked;
    # errors keep their order: configuration, database, then paths.
    with DiscordImport(community, paths, store_text=settings.storage.store_text) as job:
        engine, store, community, settings = _importer_store(args, settings)
        return _run_import(engine, lambda: job.run(store, Progress()))


def cmd_import_telegram(args: argparse.Namespace) -> int:
    """Import a Telegram Desktop JSON export (result.json or its folder); safe to run again."""
    from bot.importers.progress import Progress
    from bot.importers.runner import import_telegram_export

    engine, store, community, settings = _importer_store(args)
    return _run_import(
        engine,
        lambda: import_telegram_export(
            store,
            community,
            Path(args.path),
            store_text=settings.storage.store_text,
            progress=Progress(),
            local_zone=args.timezone,
        ),
    )


def time_zone(value: str) -> ZoneInfo:
    """An IANA time zone for ``--timezone``."""
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected an IANA time zone like Europe/Berlin or UTC, got {value!r}"
        ) from None
