"""``cohortbot forget``: a member's data-deletion request."""

from __future__ import annotations

import argparse
import asyncio

from bot.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    existing_engine,
    load_config,
    require_schema,
)

PLATFORMS = ("discord", "telegram", "console", "simulated")


def cmd_forget(args: argparse.Namespace) -> int:
    """Delete everything stored about one member (a data-deletion request); purchases are kept, anonymised."""
    from storage.ingest import IngestStore
    from storage.writer import EventWriter

    settings = load_config(args.config)
    if not args.yes:
        raise CommandError(
            f"this deletes all data of {args.platform} user {args.user} in {settings.community.name!r}; "
            "run again with --yes to confirm",
            EXIT_USAGE,
        )
    engine = existing_engine(settings)
    require_schema(engine)
    store = IngestStore(engine)
    store.register_community(settings.community.name, settings.community.timezone)

    async def forget() -> object:
        writer = EventWriter(store)
        try:
            return await writer.forget_member(settings.community.name, args.platform, args.user)
        finally:
            await writer.stop()

    report = asyncio.run(forget())
    engine.dispose()
    if report is None:
        print(f"nothing is stored about {args.platform} user {args.user}")
        return EXIT_OK
    from storage.deletion import DeletionReport

    assert isinstance(report, DeletionReport)
    deleted = ", ".join(f"{table}: {n}" for table, n in sorted(report.deleted.items()))
    print(f"deleted {deleted}")
    if report.detached:
        kept = ", ".join(f"{table}: {n}" for table, n in sorted(report.detached.items()))
        print(f"kept without the person (accounting and others' replies): {kept}")
    if report.scrubbed:
        scrubbed = ", ".join(f"{table}: {n}" for table, n in sorted(report.scrubbed.items()))
        print(f"their id and name taken out of text elsewhere: {scrubbed}")
    return EXIT_OK
