"""Run an import: parse each export file completely, then write whole files in one transaction.

Parsing a whole file before writing any of it is what makes a corrupt file safe: its error stops the import
before a single row of that file reaches the database, while files imported before it stay (they are complete,
and ``IngestStore.write_batch`` is idempotent, so running the import again after fixing the file only adds
what is missing). Small files (DCE writes ~100 messages a file) are grouped, whole, into transactions of about
``BATCH_EVENTS`` events; a file is never split across transactions, and when a file turns out to be corrupt
the complete files parsed before it are written first.

Called by ``cohortbot import discord-export PATH... [--community NAME]`` and ``cohortbot import
telegram-export result.json``; the CLI builds the store from the config, registers the community and prints
``ImportSummary.line()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from analytics.formatting import plural
from bot.importers import CorruptExportError, ExportImportError, ExportPathError, ParsedFile, paused_gc
from bot.importers.discord_export import DiscordExportReader, discover_files
from bot.importers.parallel import ParserProcess, worth_a_process
from bot.importers.progress import Progress
from bot.importers.telegram_export import parse_telegram_export
from storage.errors import UnknownCommunityError
from storage.events import ActivityEvent, MessageEvent

if TYPE_CHECKING:
    # Imported when an import runs: ``DiscordImport`` starts parsing before the CLI has loaded the storage layer.
    from storage.ingest import BatchResult, IngestStore

__all__ = [
    "CorruptExportError",
    "DiscordImport",
    "ExportImportError",
    "ExportPathError",
    "ImportSummary",
    "import_discord_export",
    "import_telegram_export",
]


BATCH_EVENTS = 5_000
"""Events per transaction when files are small. Each commit (and the WAL checkpoints commits lead to) costs
milliseconds on a VM disk: one transaction per 100-message DCE file spent most of an import committing."""


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did.

    Attributes:
        files: Export files read (including empty ones).
        empty_files: Files with no records (0 bytes or a header only).
        messages_read: Messages found in the files.
        messages: Messages stored by this import (the rest were already stored).
        members: Distinct accounts the files show (authors, joiners, leavers), new or not.
        duplicates: Events already stored before (re-import, overlapping export) and so skipped.
        joins: Joins stored by this import.
        leaves: Leaves stored by this import.
        skipped: Records deliberately not imported, as (reason, count), most frequent first.
        conflicts: Messages whose id this import had already read with different content (an export with a
            message twice, or overlapping exports of an edited message); the first one read is kept.
    """

    files: int = 0
    empty_files: int = 0
    messages_read: int = 0
    messages: int = 0
    members: int = 0
    duplicates: int = 0
    joins: int = 0
    leaves: int = 0
    skipped: tuple[tuple[str, int], ...] = ()
    conflicts: int = 0

    @property
    def skipped_total(self) -> int:
        """All records skipped, whatever the reason."""
        return sum(n for _, n in self.skipped)

    def line(self) -> str:
        """The one-line summary printed at the end of an import."""
        files = plural(self.files, "file")
        if self.empty_files:
            files += f" ({self.empty_files:,} empty)"
        # A reason names a kind of record ("channel posts ..."), not one record: a tally ("1 × ...") reads right for
        # any count, where "1 channel posts" would not.
        skipped = ", ".join(f"{n:,} × {reason}" for reason, n in self.skipped) or "nothing"
        conflicts = ""
        if self.conflicts:
            ids = plural(self.conflicts, "duplicate message id")
            conflicts = f"; {ids} with different content (kept the first)"
        return (
            f"imported {files}: {plural(self.messages_read, 'message')} read, {self.messages:,} new, "
            f"{plural(self.duplicates, 'duplicate')} skipped (already stored); {plural(self.members, 'member')}; "
            f"{plural(self.joins, 'join')}, {plural(self.leaves, 'leave')}; skipped: {skipped}{conflicts}"
        )


def _content(event: MessageEvent) -> tuple[object, ...]:
    """What makes two copies of one message id the same message (reaction totals may grow between exports)."""
    return (
        event.author.user_id,
        event.occurred_at,
        event.length,
        event.has_code,
        event.has_link,
        event.attachments,
        event.reply_to_message_id,
        event.text,
    )


@dataclass(slots=True)
class _Tally:
    stored: BatchResult
    files: int = 0
    empty_files: int = 0
    messages_read: int = 0
    members: set[str] = field(default_factory=set)
    skipped: Counter[str] = field(default_factory=Counter)
    seen: dict[tuple[str, str, str], dict[str, MessageEvent]] = field(default_factory=dict)
    conflicts: int = 0

    def add(self, parsed: ParsedFile) -> None:
        self.files += 1
        self.empty_files += parsed.empty
        self.messages_read += parsed.messages
        self.members |= parsed.members
        self.skipped.update(parsed.skipped)
        # The store keeps the first copy of a message id and counts later ones as duplicates; a later copy
        # with other content is worth telling the operator about (the export may be broken or edited).
        # Events of one file share their channel object, so the channel's table is looked up once per run of
        # events, and contents are only compared when an id comes again.
        seen = self.seen
        channel: object = None
        by_id: dict[str, MessageEvent] = {}
        for event in parsed.events:
            if type(event) is MessageEvent:
                if event.channel is not channel:
                    channel = event.channel
                    scope = (event.platform.value, event.community, event.channel.channel_id)
                    by_id = seen.setdefault(scope, {})
                first = by_id.setdefault(event.message_id, event)
                if first is not event and _content(first) != _content(event):
                    self.conflicts += 1

    def summary(self) -> ImportSummary:
        return ImportSummary(
            files=self.files,
            empty_files=self.empty_files,
            messages_read=self.messages_read,
            messages=self.stored.messages,
            members=len(self.members),
            duplicates=self.stored.duplicates,
            joins=self.stored.joins,
            leaves=self.stored.leaves,
            skipped=tuple(self.skipped.most_common()),
            conflicts=self.conflicts,
        )


def _check_store(store: IngestStore, community: str, store_text: bool) -> None:
    if not store.is_registered(community):
        raise UnknownCommunityError(community)
    if store_text and not store.store_text:
        # The store would silently drop the text the events carry: a wiring mistake, not an operator's.
        raise ValueError("store_text=True needs an IngestStore created with store_text=True")


def _parse_each(files: Sequence[Path], parse: Callable[[Path], ParsedFile]) -> Iterator[ParsedFile]:
    for path in files:
        yield parse(path)


def _run(
    store: IngestStore,
    parsed_files: Iterable[ParsedFile],
    total_files: int,
    progress: Progress | None,
    batch_events: int,
) -> ImportSummary:
    """Store ``parsed_files`` (parsed here or in a ``ParserProcess``, in import order) and tally them."""
    from storage.ingest import BatchResult

    tally = _Tally(BatchResult())
    pending: list[ParsedFile] = []
    pending_events: list[ActivityEvent] = []

    def flush() -> None:
        # Only whole, fully parsed files are ever in ``pending``, so one transaction for several of them still
        # stores each file completely or not at all.
        result = store.write_batch(pending_events)
        for parsed in pending:
            tally.add(parsed)
        tally.stored += result
        pending.clear()
        pending_events.clear()

    if progress is not None:
        progress.start(total_files)
    try:
        source = iter(parsed_files)
        while True:
            try:
                parsed = next(source)
            except StopIteration:
                break
            except CorruptExportError as exc:
                flush()  # the files before this one are complete: keep them
                kept = plural(tally.files, "file")
                verb = "is" if tally.files == 1 else "are"
                error = CorruptExportError(
                    exc.file,
                    exc.line,
                    f"{exc.message}; {kept} imported before this one {verb} kept; "
                    "fix the file and run again — re-importing is safe",
                )
                error.kept = tally.summary()
                raise error from None
            pending.append(parsed)
            pending_events.extend(parsed.events)
            if len(pending_events) >= batch_events:
                flush()
            if progress is not None:
                progress.update(tally.files + len(pending), tally.messages_read + sum(p.messages for p in pending))
        flush()
    finally:
        if progress is not None:
            progress.finish()
    return tally.summary()


class DiscordImport:
    """A Discord import prepared before the database is opened: its files found and, when it pays, being parsed.

    The CLI prepares the import first, so that the parser process works while this one loads the storage layer and
    checks the database; ``run`` then stores what it parses. Use it as a context manager (leaving the block ends a
    parser process that is still running). ``import_discord_export`` is prepare-and-run in one call.
    """

    def __init__(
        self, community: str, paths: Sequence[Path], *, store_text: bool = False, parallel: bool | None = None
    ) -> None:
        """Find the files and, when ``parallel`` (by default: when it pays), start parsing them in a second process.

        A path error is kept and raised by ``run``, after the checks that come before it there.
        """
        self.community = community
        self.store_text = store_text
        self._path_error: ExportPathError | None = None
        try:
            self.files = discover_files(paths)
        except ExportPathError as exc:
            self.files = []
            self._path_error = exc
        self._reader = DiscordExportReader(community, store_text=store_text)
        if parallel is None:
            parallel = worth_a_process(self.files)
        # Parsing and storing take about the same CPU: the second core parses the next files while this process
        # stores the ones before (see ``bot.importers.parallel``).
        self._parser = ParserProcess(self.files, self._reader.parse) if parallel and self.files else None

    def run(self, store: IngestStore, progress: Progress | None = None) -> ImportSummary:
        """Store the files' events (see ``import_discord_export`` for what is raised)."""
        _check_store(store, self.community, self.store_text)
        if self._path_error is not None:
            raise self._path_error
        with paused_gc():
            if self._parser is None:
                return _run(store, _parse_each(self.files, self._reader.parse), len(self.files), progress, BATCH_EVENTS)
            with self._parser:
                return _run(store, self._parser, len(self.files), progress, BATCH_EVENTS)

    def close(self) -> None:
        """End the parser process, if one still runs."""
        if self._parser is not None:
            self._parser.close()

    def __enter__(self) -> DiscordImport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def import_discord_export(
    store: IngestStore,
    community: str,
    paths: Sequence[Path],
    *,
    store_text: bool = False,
    progress: Progress | None = None,
    parallel: bool | None = None,
) -> ImportSummary:
    """Import DiscordChatExporter CSV and JSON exports (files, or folders searched recursively).

    Args:
        store: The ingest store; ``community`` must be registered on it.
        community: The community the history belongs to.
        paths: Export files and folders. Parts of one export are read in order whatever order they are given in.
        store_text: Keep message text (the store must have been created with ``store_text=True``); otherwise only
            metadata (length, code, links, attachments, reaction totals) is stored.
        progress: A progress bar to update, or None.
        parallel: Parse in a second process while this one stores (``bot.importers.parallel``); by default when
            that pays (``worth_a_process``). The result is the same either way.

    Returns:
        What was read and stored.

    Raises:
        ExportPathError: A path does not exist or holds no export files; nothing was imported.
        CorruptExportError: A file is malformed; nothing from it was stored, files before it were (``kept``).
        UnknownCommunityError: ``community`` is not registered on ``store``.
    """
    _check_store(store, community, store_text)
    with DiscordImport(community, paths, store_text=store_text, parallel=parallel) as job:
        return job.run(store, progress)


def import_telegram_export(
    store: IngestStore,
    community: str,
    path: Path,
    *,
    store_text: bool = False,
    progress: Progress | None = None,
    local_zone: tzinfo = UTC,
) -> ImportSummary:
    """Import a Telegram Desktop chat export (``result.json``, or the export folder that holds it).

    The whole chat is written in one transaction, so a malformed message leaves the database untouched.

    Args:
        store: The ingest store; ``community`` must be registered on it.
        community: The community the chat belongs to.
        path: ``result.json`` or its folder.
        store_text: Keep message text (see ``import_discord_export``).
        progress: A progress bar to update, or None.
        local_zone: The exporting computer's zone, for old exports without ``date_unixtime`` (default UTC).

    Returns:
        What was read and stored.

    Raises:
        ExportPathError: The path does not exist, or a folder without ``result.json``.
        CorruptExportError: The file is malformed; nothing was stored.
        UnknownCommunityError: ``community`` is not registered on ``store``.
    """
    _check_store(store, community, store_text)
    if path.is_dir():
        if not (path / "result.json").is_file():
            raise ExportPathError(f"{path}: no result.json in this folder (Telegram Desktop's JSON export)")
        path = path / "result.json"
    elif not path.is_file():
        raise ExportPathError(f"{path}: no such file or folder")
    with paused_gc():
        return _run(
            store,
            _parse_each(
                [path], lambda p: parse_telegram_export(p, community, store_text=store_text, local_zone=local_zone)
            ),
            1,
            progress,
            BATCH_EVENTS,
        )
