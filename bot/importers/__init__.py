"""History importers: DiscordChatExporter and Telegram Desktop exports into the same tables as live logging.

The parsers (``discord_export``, ``telegram_export``) turn one export file into platform-neutral events and
never touch the database; ``runner`` writes each file's events in one ``IngestStore.write_batch`` call. This
module holds what both sides share: the errors and the parse result.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from storage.events import ActivityEvent

__all__ = [
    "EARLIEST_TIME",
    "LATEST_TIME",
    "CorruptExportError",
    "ExportImportError",
    "ExportPathError",
    "FieldError",
    "ParsedFile",
    "check_time",
    "json_item_line",
    "load_json_bytes",
    "out_of_range",
    "paused_gc",
    "reaction_total",
]

# The times an import accepts. Chat platforms began long after 1970 (Unix time 0), and a date far in the future is
# a broken export; both bounds also keep every day a report or a rollup derives from a time (in any time zone,
# plus a week) well inside what Python's datetime can hold, which a year-1 or year-9999 date does not.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)


class ExportImportError(Exception):
    """Base class of the errors an import reports to the operator (the CLI prints them and exits non-zero)."""


class CorruptExportError(ExportImportError):
    """An export file cannot be read as it is; nothing from that file was stored.

    ``str()`` is ``file:line: message`` so that editors and terminals can jump to the spot.

    Attributes:
        file: The file that is wrong.
        line: The physical line (1-based) where the bad record starts.
        message: What is wrong, in words an operator can act on.
        kept: Set by the runner: the summary of the files imported before this one, which stay stored.
    """

    def __init__(self, file: Path | str, line: int, message: str) -> None:
        self.file = Path(file)
        self.line = line
        self.message = message
        self.kept: object | None = None
        super().__init__(f"{self.file}:{line}: {message}")


class ExportPathError(ExportImportError):
    """A path given to an importer does not exist or holds no export files."""


@dataclass(slots=True)
class ParsedFile:
    """One export file turned into events, ready to be written in one transaction.

    Attributes:
        path: The file.
        events: Messages, joins and leaves in file order.
        messages: How many of ``events`` are messages.
        members: Platform user ids of everyone the file shows (authors, joiners, leavers).
        skipped: Records deliberately not imported, by reason (for the summary line).
        empty: The file holds no records at all (0 bytes, or only a header).
    """

    path: Path
    events: list[ActivityEvent] = field(default_factory=list)
    messages: int = 0
    members: set[str] = field(default_factory=set)
    skipped: Counter[str] = field(default_factory=Counter)
    empty: bool = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector off (and put it back as it was).

    An import allocates millions of objects that live until it ends (parsed documents, events, rows) and form no
    reference cycles; the collector, which runs every few hundred allocations and walks more and more of them,
    spent a fifth of an import's time finding nothing. Memory without cycles is still freed as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_export_text(path: Path) -> str:
    """The text of an export file, decoded as UTF-8.

    Exporters (DiscordChatExporter, like most .NET writers on Windows) may start the file with a BOM: it is dropped.

    Raises:
        CorruptExportError: The file is not UTF-8; the error names the line of the first undecodable byte.
    """
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CorruptExportError(path, line, f"not UTF-8 text (byte {exc.start} cannot be decoded)") from None


_BOM = b"\xef\xbb\xbf"


def load_json_bytes(path: Path, raw: bytes) -> Any:
    """The JSON document in ``raw``, the bytes of ``path`` (a leading BOM is dropped).

    Parsed with orjson, several times faster than the json module on exports of many messages. When orjson
    refuses the bytes, the file is read again the careful way (``read_export_text`` and ``load_json_export``) so
    that the operator gets the same error as ever: the undecodable byte's line, or the JSON error's line and
    column.

    Raises:
        CorruptExportError: The bytes are not UTF-8 or not valid JSON.
    """
    try:
        return orjson.loads(raw[3:] if raw.startswith(_BOM) else raw)
    except orjson.JSONDecodeError:
        # Raises the error with its line and column. orjson is also stricter than the json module in a few
        # corners (NaN, integers beyond 64 bits): what the json module accepts is read as it always was.
        return load_json_export(path, read_export_text(path))


def load_json_export(path: Path, text: str) -> Any:
    """The JSON document ``text`` read from ``path``.

    Raises:
        CorruptExportError: ``text`` is not valid JSON; the error names the line and column.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptExportError(path, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None


def json_item_line(text: str, key: str, index: int) -> int | None:
    """The physical line where ``text``'s top-level ``key`` array has its item ``index``.

    ``json.loads`` keeps no positions, so when a JSON export fails validation this walks the document again
    with ``raw_decode`` (only on that error path, so imports stay fast) to point the operator at the line.

    Args:
        text: A JSON document whose top level is an object.
        key: The array member to look in (``"messages"``).
        index: The item's position in the array.

    Returns:
        The 1-based line number, or None when the document does not have that shape.
    """
    decoder = json.JSONDecoder()
    ws = " \t\n\r"
    pos = 0
    n = len(text)

    def skip(p: int) -> int:
        while p < n and text[p] in ws:
            p += 1
        return p

    try:
        pos = skip(pos)
        if text[pos] != "{":
            return None
        pos = skip(pos + 1)
        while pos < n and text[pos] != "}":
            name, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            pos = skip(pos + 1)  # the ":"
            if name == key and text[pos] == "[":
                pos = skip(pos + 1)
                for _ in range(index):
                    _, pos = decoder.raw_decode(text, pos)
                    pos = skip(pos)
                    pos = skip(pos + 1)  # the ","
                return text.count("\n", 0, pos) + 1
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if pos < n and text[pos] == ",":
                pos = skip(pos + 1)
    except (ValueError, IndexError):
        return None
    return None


class FieldError(ValueError):
    """A message field is missing or malformed; the text starts with the field's path."""


def check_time(at: datetime, field_name: str, raw: object) -> datetime:
    """``at`` when it lies within the times an import accepts (1970-01-01 .. 2099-12-31 UTC).

    Args:
        at: The parsed, UTC-aware time.
        field_name: The field it came from, for the message (``"Date"``, ``"date_unixtime"`` ...).
        raw: The value as the export wrote it, for the message.

    Raises:
        FieldError: The time is out of range.
    """
    if EARLIEST_TIME <= at < LATEST_TIME:
        return at
    raise FieldError(out_of_range(field_name, raw))


def out_of_range(field_name: str, raw: object) -> str:
    """The message for a time outside the accepted range (also used when Python cannot even represent it)."""
    return (
        f"{field_name}: {raw!r} is out of range: imported times must lie between "
        f"{EARLIEST_TIME:%Y-%m-%d} and {LATEST_TIME.year - 1}-12-31 (UTC)"
    )


def reaction_total(value: object) -> int:
    """The sum of an export's per-message reaction counts (``[{..., "count": N}, ...]``; both exporters write it).

    Raises:
        FieldError: Not a list, or a count that is not a non-negative integer.
    """
    if value is None:
        return 0
    if not isinstance(value, list):
        raise FieldError("reactions: expected a list")
    total = 0
    for i, reaction in enumerate(value):
        count = reaction.get("count") if isinstance(reaction, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise FieldError(f"reactions[{i}].count: expected a non-negative integer, got {count!r}")
        total += count
    return total
