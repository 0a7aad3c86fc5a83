"""DiscordChatExporter (DCE) exports, CSV and JSON, turned into events. Pure: no database.

CSV (``AuthorID;Author;Date;Content;Attachments;Reactions;``)
    Every field double-quoted, ``;``-separated with a trailing ``;`` (classic DCE) or ``,``-separated without
    one (current DCE); content may span lines. The CSV carries no message ids, no reply links and no
    bot flag, so CSV authors are stored as humans and CSV messages never count as replies.

    Message ids are derived: ``dce:`` + a hash of (channel id, author id, the UTC minute, the content, and the
    ordinal of the message among identical (author, minute, content) messages in the same minute of the
    channel's stream). A stream is the set of part files of one export of one channel (``1.csv``, ``2.csv``
    ... in one folder, or DCE's ``Name [id].csv``, ``Name [id] [part 2].csv``), read in part order; the
    ordinal carries across part boundaries (real data has bursts of identical messages that straddle them),
    and a part imported without its predecessors reads them to count on (see ``_carry_in``). Limits:

    * The same message always gets the same id, so re-imports and overlapping exports are stored once, and a
      later export adds only messages that are new.
    * An id cannot be matched to Discord's real message id: a CSV import that overlaps live logging or a JSON
      export of the same channel stores those messages twice. Import CSV only for history before the bot ran.
    * A message edited between two exports gets a new id (its content changed) and is stored twice.
    * Identical messages by one author in one minute that straddle the boundary of two *separate* exports
      (not parts of one export) are numbered from 0 in each, so the later copy counts as a duplicate.
    * Dates have minute precision and no zone; they are taken as UTC (DCE writes the exporter's local time
      unless it was run with ``--utc``).

    Supported ``Date`` formats: DCE's classic default ``dd-MMM-yy hh:mm tt`` (``02-Jul-18 08:51 PM``, English
    month abbreviations), the ``en-US`` locale that current DCE versions use by default on most machines
    (``7/2/2018 8:51 PM``; the AM/PM marker is what tells it from day-first locales such as ``en-GB``, which
    are ambiguous and rejected) and ISO 8601 (``2018-07-02T20:51:00+00:00``; zone-less ISO is taken as UTC).
    Anything else stops the import with the line and a hint to re-export with ``--locale en-US --utc``, and so
    does a time outside 1970-01-01 .. 2099-12-31 UTC (``bot.importers.check_time``).

JSON (``{guild, channel, messages: [...]}``)
    Real message ids, ``author.isBot``, reply references and reaction counts; ``GuildMemberJoin`` system
    messages become joins, other system messages (pins, thread creation, calls ...) are skipped and counted.

Channel ids for CSV come from, in order: the DCE file name (``... [123456].csv``); a ``channels.json`` in an
ancestor folder (``{category_id: {name, channels: {channel_id: channel_name}}}``) matched on the channel folder
name (and the category folder name when a channel name is not unique); else ``name:<channel name>``.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson

from bot.importers import (
    EARLIEST_TIME,
    LATEST_TIME,
    CorruptExportError,
    ExportPathError,
    ParsedFile,
    check_time,
    json_item_line,
    load_json_bytes,
    load_json_export,
    out_of_range,
    reaction_total,
    read_export_text,
)
from bot.importers import FieldError as _FieldError
from storage.events import (
    ActivityEvent,
    ChannelRef,
    EventError,
    MemberJoined,
    MemberRef,
    MessageEvent,
    Platform,
    text_facts,
)

__all__ = ["CHUNK_BYTES", "CSV_FIELDS", "DiscordExportReader", "discover_files", "parse_date"]

CSV_FIELDS = ("AuthorID", "Author", "Date", "Content", "Attachments", "Reactions")
EXPORT_SUFFIXES = (".csv", ".json")
CHANNEL_MAP_NAME = "channels.json"

SKIP_SYSTEM = "Discord system messages (pins, thread creation, calls ...)"

# --- dates -----------------------------------------------------------------------------------------------------

_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_CLASSIC_RE = re.compile(r"(\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}) ([AP]M)")
_EN_US_RE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}) ([AP]M)")
_ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")

UNKNOWN_DATE_HINT = (
    "supported are DiscordChatExporter's classic default like '02-Jul-18 08:51 PM', the en-US locale like "
    "'7/2/2018 8:51 PM' and ISO 8601 like '2018-07-02T20:51:00+00:00'; re-export with --locale en-US --utc"
)


def _iso_to_utc(parsed: datetime, field_name: str, raw: str) -> datetime:
    """A parsed ISO time in UTC (zone-less is taken as UTC), within the range an import accepts."""
    try:
        at = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 with a positive offset (or year 9999 with a negative one) falls off the calendar in UTC.
        raise _FieldError(out_of_range(field_name, raw)) from None
    return check_time(at, field_name, raw)


def _twelve_hour(hour: int, marker: str) -> int:
    if not 1 <= hour <= 12:
        raise ValueError(f"hour {hour} is not on a 12-hour clock")
    return hour % 12 + (12 if marker == "PM" else 0)


def parse_date(value: str) -> datetime:
    """Parse a DCE date in one of the supported formats (see the module docstring) into a UTC datetime.

    Args:
        value: The ``Date`` field (CSV) or ``timestamp`` (JSON).

    Returns:
        An aware UTC datetime. Zone-less values are taken as UTC.

    Raises:
        ValueError: The value has an unknown format, or is not a real date in a known one; the message says which.
    """
    m = _CLASSIC_RE.fullmatch(value)
    if m:
        day, mon, yy, hh, mm, ampm = m.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            raise ValueError(f"Date {value!r}: unknown month {mon!r} (expected an English abbreviation like 'Jul')")
        # Two-digit years: Discord started in 2015, so every export date is in this century.
        return datetime(2000 + int(yy), month, int(day), _twelve_hour(int(hh), ampm), int(mm), tzinfo=UTC)
    m = _EN_US_RE.fullmatch(value)
    if m:
        mon_s, day, year, hh, mm, ampm = m.groups()
        if int(year) == 0:
            raise ValueError(out_of_range("Date", value))
        at = datetime(int(year), int(mon_s), int(day), _twelve_hour(int(hh), ampm), int(mm), tzinfo=UTC)
        return check_time(at, "Date", value)
    if _ISO_RE.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"Date {value!r}: not a valid ISO 8601 time") from None
        return _iso_to_utc(parsed, "Date", value)
    raise ValueError(f"Date {value!r} has an unknown format: {UNKNOWN_DATE_HINT}")


# --- files and streams -----------------------------------------------------------------------------------------

_PART_RE = re.compile(r"(?P<base>.*) \[part (?P<part>\d+)\]")
_DCE_ID_RE = re.compile(r"(?P<title>.*?)\s*\[(?P<id>\d+)\]")
_NAT_RE = re.compile(r"(\d+)")


def _natural(text: str) -> list[str | int]:
    # re.split with a group alternates text and digit runs, so positions compare str-to-str and int-to-int.
    return [int(tok) if i % 2 else tok for i, tok in enumerate(_NAT_RE.split(text))]


def _split_name(path: Path) -> tuple[str, int]:
    """(stream base, part number) of an export file name: ``17.csv`` → ("", 17), ``X [part 2].csv`` → ("X", 2)."""
    stem = path.stem
    if stem.isdigit():
        return "", int(stem)
    m = _PART_RE.fullmatch(stem)
    if m:
        return m["base"], int(m["part"])
    return stem, 1


def _sort_key(path: Path) -> tuple[list[str | int], list[str | int], int, str]:
    base, part = _split_name(path)
    return _natural(str(path.parent)), _natural(base), part, path.suffix.lower()


def _is_export(path: Path) -> bool:
    return path.suffix.lower() in EXPORT_SUFFIXES and path.name.lower() != CHANNEL_MAP_NAME


def discover_files(paths: Iterable[Path]) -> list[Path]:
    """The export files named by ``paths`` (files, or folders searched recursively), in import order.

    Import order is by folder, then stream, then part number, so that the parts of one export are read in the
    order DCE wrote them. ``channels.json`` and files other than ``.csv``/``.json`` inside folders are ignored;
    a file named explicitly must be an export. A file reached twice is listed once.

    Raises:
        ExportPathError: A path does not exist, is not an export, or a folder holds no export files.
    """
    found: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir():
            inside = [p for p in path.rglob("*") if p.is_file() and _is_export(p)]
            if not inside:
                raise ExportPathError(f"{path}: no DiscordChatExporter .csv or .json files in this folder")
            for p in inside:
                found.setdefault(p.resolve(), p)
        elif path.is_file():
            if not _is_export(path):
                raise ExportPathError(f"{path}: not a DiscordChatExporter export (expected a .csv or .json file)")
            found.setdefault(path.resolve(), path)
        else:
            raise ExportPathError(f"{path}: no such file or folder")
    return sorted(found.values(), key=_sort_key)


@dataclass(frozen=True, slots=True)
class _StreamKey:
    directory: Path
    base: str


@dataclass(slots=True)
class _Run:
    """The identical-message counts of the current minute of a stream (what the next message's ordinal needs)."""

    minute: datetime | None = None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def copy(self) -> _Run:
        return _Run(self.minute, dict(self.counts))

    def ordinal(self, minute: datetime, author_id: str, content: str) -> int:
        if minute != self.minute:
            # Ordinals only disambiguate messages of one minute: earlier minutes can never match again.
            self.minute = minute
            self.counts = {}
        key = (author_id, content)
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        return n


_blake2b = hashlib.blake2b


def csv_message_id(channel_id: str, author_id: str, minute: str, content: str, ordinal: int) -> str:
    """The derived id of a CSV message (see the module docstring for what it can and cannot match).

    Args:
        channel_id: The channel's id as stored.
        author_id: The author's Discord id.
        minute: The UTC minute of the message, ``YYYY-MM-DDTHH:MM``.
        content: The message content as exported.
        ordinal: How many identical (author, minute, content) messages came before it in the stream.
    """
    digest = _blake2b(f"{channel_id}\n{author_id}\n{minute}\n{ordinal}\n{content}".encode(), digest_size=16)
    return "dce:" + digest.hexdigest()


# --- channels.json ---------------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-")


@dataclass(slots=True)
class _ChannelMap:
    """Channel folder name → (channel id, category slug) candidates, from a ``channels.json``."""

    by_name: dict[str, list[tuple[str, str]]]

    def lookup(self, channel: str, category: str) -> str | None:
        candidates = self.by_name.get(channel, [])
        if len(candidates) > 1:
            candidates = [c for c in candidates if c[1] == _slug(category)]
        return candidates[0][0] if len(candidates) == 1 else None


def _load_channel_map(path: Path) -> _ChannelMap:
    doc = load_json_export(path, read_export_text(path))
    shape = 'expected {category_id: {"name": ..., "channels": {channel_id: channel_name}}}'
    if not isinstance(doc, dict):
        raise CorruptExportError(path, 1, f"not a channel map: {shape}")
    by_name: dict[str, list[tuple[str, str]]] = {}
    for category_id, category in doc.items():
        channels = category.get("channels") if isinstance(category, dict) else None
        if not isinstance(channels, dict):
            raise CorruptExportError(path, 1, f"{category_id}: not a category with channels: {shape}")
        slug = _slug(str(category.get("name") or ""))
        for channel_id, channel_name in channels.items():
            if not isinstance(channel_name, str) or not str(channel_id).isdigit():
                raise CorruptExportError(path, 1, f"{category_id}.channels.{channel_id}: {shape}")
            by_name.setdefault(channel_name, []).append((str(channel_id), slug))
    return _ChannelMap(by_name)


# --- reading ---------------------------------------------------------------------------------------------------


_UNBALANCED = "unbalanced quote: a quoted field is not closed (the record runs on to the end of the file)"


def _csv_error(exc: csv.Error, delimiter: str, rest: str) -> str:
    """What a ``csv.Error`` means, in words; ``rest`` is the text from the failing record's first line on."""
    msg = str(exc)
    if "field larger than field limit" in msg:
        # The csv module says the same whether one field is really that long or an unclosed quote swallowed the
        # rest of the file. In a well-formed remainder every quote is paired (fields open and close, quotes in
        # content are doubled), so an even count means the long field does close: it is just too long.
        if rest.count('"') % 2 == 0:
            return (
                f"field longer than {csv.field_size_limit():,} characters (the most one field may hold; "
                "a Discord message is at most 4,000 characters, so this is not a plain export)"
            )
        return _UNBALANCED
    if "unexpected end of data" in msg:
        return _UNBALANCED
    if "expected after" in msg:
        return (
            f"malformed quoting: {delimiter!r} expected after a closing quote "
            "(an unbalanced quote, or a quote inside a field that is not doubled)"
        )
    return f"malformed CSV record: {msg}"


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line where the record starts, its six fields) after checking the header and each record's shape."""
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if first_line.startswith("AuthorID;"):
        delimiter, trailing = ";", True
    elif first_line.startswith("AuthorID,"):
        delimiter, trailing = ",", first_line.endswith(",")
    else:
        raise CorruptExportError(
            path, 1, f"not a DiscordChatExporter CSV: the header is {first_line[:80]!r}, expected 'AuthorID;Author;...'"
        )
    expected = list(CSV_FIELDS) + ([""] if trailing else [])
    width = len(expected)
    shown = delimiter.join(CSV_FIELDS) + (delimiter if trailing else "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader)
        if header != expected:
            raise CorruptExportError(path, 1, f"unexpected header {first_line[:120]!r}, expected {shown!r}")
        while True:
            start = reader.line_num + 1
            row = next(reader)
            if not row:
                continue  # a blank line carries no record
            if len(row) != width or (trailing and row[-1] != ""):
                raise CorruptExportError(path, start, f"expected {width} fields ({shown}), found {len(row)}")
            yield start, row
    except StopIteration:
        return
    except csv.Error as exc:
        rest = text.split("\n", start - 1)[-1] if start > 1 else text
        raise CorruptExportError(path, start, _csv_error(exc, delimiter, rest)) from None


def _reaction_total(value: str) -> int:
    """Sum of ``👍 (2),Komodo (1)``-style per-emoji totals. Raises ValueError when the field has another shape."""
    if not value:
        return 0
    total = 0
    for item in value.split(","):
        open_at = item.rfind(" (")
        count = item[open_at + 2 : -1] if open_at > 0 and item.endswith(")") else ""
        if not count.isdigit():
            raise ValueError(f"Reactions: expected 'emoji (count),...', got {value[:80]!r}")
        total += int(count)
    return total


def _facts(content: str) -> tuple[int, bool, bool]:
    """``text_facts(content)`` as (length, has code, has link), without its regular expressions when they cannot match.

    Code needs a backtick and a link needs ``://`` or ``www.``, so text with no backtick, colon or full stop (most
    chat messages) has neither; the rest goes through ``text_facts``, the one definition of both.
    """
    if "`" in content or ":" in content or "." in content:
        facts = text_facts(content)
        return facts.length, facts.has_code, facts.has_link
    return len(content), False, False


def _count_attachments(value: str) -> int:
    # DCE joins attachment URLs with ","; URLs escape their own commas.
    return sum(1 for url in value.split(",") if url.strip()) if value else 0


# --- the reader ------------------------------------------------------------------------------------------------


class DiscordExportReader:
    """Parses DCE export files into events, one file at a time, remembering what later files need.

    State kept across files of one import: the ordinal run at the end of each CSV stream (so that part N+1
    continues part N), channel maps, and authors of JSON messages (so replies to an earlier part resolve).
    The state only advances when a file parses completely.
    """

    def __init__(
        self,
        community: str,
        *,
        store_text: bool = False,
        stream_bytes: int | None = None,
        chunk_bytes: int | None = None,
    ) -> None:
        """Create a reader.

        Args:
            community: The community the events belong to.
            store_text: Put message text on the events (only when the owner turned text storage on).
            stream_bytes: JSON files bigger than this are read message by message; ``STREAM_BYTES`` by default.
            chunk_bytes: How much of a JSON file over ``RUNS_BYTES`` (or ``stream_bytes``) is read at a time when
                it has DCE's layout (``CHUNK_BYTES`` by default); 0 reads it whole or with ijson whatever its layout.
        """
        self.community = community
        self.store_text = store_text
        self.stream_bytes = STREAM_BYTES if stream_bytes is None else stream_bytes
        self.chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        self._runs: dict[_StreamKey, tuple[int, _Run]] = {}
        self._channels: dict[_StreamKey, ChannelRef] = {}
        self._maps: dict[Path, _ChannelMap | None] = {}
        self._siblings: dict[Path, dict[str, list[tuple[int, Path]]]] = {}
        self._dates: dict[str, tuple[datetime, datetime, str]] = {}
        self._classic_days: dict[str, tuple[int, int, int, str]] = {}
        self._classic_clocks: dict[str, tuple[int, int, str]] = {}
        self._members: dict[tuple[str, str], MemberRef] = {}
        self._json_authors: dict[str, dict[str, str]] = {}
        self._json_refs: dict[tuple[str, str | None, bool], MemberRef] = {}

    def parse(self, path: Path) -> ParsedFile:
        """Turn one export file into events.

        Raises:
            CorruptExportError: The file (or a ``channels.json`` or earlier part it depends on) is malformed.
        """
        if path.suffix.lower() == ".json":
            return self._parse_json(path)
        return self._parse_csv(path)

    # --- CSV ---------------------------------------------------------------------------------------------------

    def _date(self, value: str) -> tuple[datetime, datetime, str]:
        """(instant, its UTC minute, the minute as text for the id hash) of a CSV date."""
        parsed = self._dates.get(value)
        if parsed is None:
            # Minute-precision dates repeat a lot: parse and format each distinct string once.
            parsed = self._classic_date(value) or self._new_date(value)
            if len(self._dates) > 100_000:
                self._dates.clear()
            self._dates[value] = parsed
        return parsed

    def _classic_date(self, value: str) -> tuple[datetime, datetime, str] | None:
        """A classic DCE date (``02-Jul-18 08:51 PM``) whose day and clock time were both seen before, or None.

        Most distinct dates of an export are new minutes of a day seen before: the day (``02-Jul-18``) and the
        clock time (``08:51 PM``) are each checked and parsed once, by ``parse_date`` in ``_new_date``. Any
        pairing of a valid classic day with a valid classic clock time is itself a valid classic date.
        """
        if len(value) != 18 or value[9] != " ":
            return None
        day = self._classic_days.get(value[:9])
        clock = self._classic_clocks.get(value[10:]) if day is not None else None
        if day is None or clock is None:
            return None
        at = datetime(day[0], day[1], day[2], clock[0], clock[1], tzinfo=UTC)
        return at, at, day[3] + clock[2]

    def _new_date(self, value: str) -> tuple[datetime, datetime, str]:
        at = parse_date(value)
        # DCE's own formats have minute precision already; isoformat is the fastest way to the minute's text.
        minute = at if not (at.second or at.microsecond) else at.replace(second=0, microsecond=0)
        text = minute.isoformat(timespec="minutes")[:16]
        if len(value) == 18 and _CLASSIC_RE.fullmatch(value):
            self._classic_days[value[:9]] = (at.year, at.month, at.day, text[:11])
            self._classic_clocks[value[10:]] = (at.hour, at.minute, text[11:])
        return at, minute, text

    def _member(self, user_id: str, name: str) -> MemberRef:
        key = (user_id, name)
        ref = self._members.get(key)
        if ref is None:
            ref = self._members[key] = MemberRef(user_id, display_name=name or None)
        return ref

    def _stream(self, path: Path) -> tuple[_StreamKey, int]:
        base, part = _split_name(path)
        return _StreamKey(path.parent, base), part

    def _parse_csv(self, path: Path) -> ParsedFile:
        text = read_export_text(path)
        if not text.strip():
            return ParsedFile(path, empty=True)
        out = ParsedFile(path)
        key, part = self._stream(path)
        channel = self._csv_channel(path, key)
        run = self._carry_in(key, part)
        events: list[ActivityEvent] = out.events
        store_text = self.store_text
        community = self.community
        channel_id = channel.channel_id
        # The loop runs once per message of an import: methods are bound to locals, and the common empty
        # reactions and attachments fields skip their parsers.
        dates = self._dates
        parse_time = self._date
        member = self._member
        ordinal_of = run.ordinal
        members = out.members
        discord = Platform.DISCORD
        for line, row in _csv_records(path, text):
            author_id, author, date, content, attachments, reactions = row[:6]
            try:
                if not author_id.isdigit():
                    raise ValueError(f"AuthorID: expected a Discord user id (digits), got {author_id!r}")
                at, minute, minute_text = dates.get(date) or parse_time(date)
                reaction_total = _reaction_total(reactions) if reactions else 0
            except ValueError as exc:
                raise CorruptExportError(path, line, str(exc)) from None
            length, has_code, has_link = _facts(content)
            events.append(
                MessageEvent(
                    platform=discord,
                    community=community,
                    message_id=csv_message_id(
                        channel_id, author_id, minute_text, content, ordinal_of(minute, author_id, content)
                    ),
                    channel=channel,
                    author=member(author_id, author),
                    occurred_at=at,
                    length=length,
                    has_code=has_code,
                    has_link=has_link,
                    attachments=_count_attachments(attachments) if attachments else 0,
                    text=content if store_text else None,
                    imported_reactions=reaction_total,
                )
            )
            members.add(author_id)
        out.messages = len(events)
        out.empty = not events
        self._runs[key] = (part, run)
        return out

    def _csv_channel(self, path: Path, key: _StreamKey) -> ChannelRef:
        channel = self._channels.get(key)
        if channel is not None:
            return channel
        m = _DCE_ID_RE.fullmatch(key.base)
        if m:
            # DCE names files "Guild - Category - channel [id]"; the channel's name is the last segment.
            name = m["title"].rsplit(" - ", 1)[-1].strip() or None
            channel = ChannelRef(m["id"], name=name)
        else:
            # Numbered parts (1.csv ...) live in a folder named after the channel, inside its category's folder.
            name = path.parent.name if key.base == "" else key.base
            category = path.parent.parent.name if key.base == "" else path.parent.name
            mapping = self._channel_map(path.parent)
            found = mapping.lookup(name, category) if mapping is not None else None
            channel = ChannelRef(found or f"name:{name}", name=name)
        self._channels[key] = channel
        return channel

    def _channel_map(self, directory: Path) -> _ChannelMap | None:
        if directory in self._maps:
            return self._maps[directory]
        candidate = directory / CHANNEL_MAP_NAME
        if candidate.is_file():
            mapping: _ChannelMap | None = _load_channel_map(candidate)
        elif directory.parent != directory:
            mapping = self._channel_map(directory.parent)
        else:
            mapping = None
        self._maps[directory] = mapping
        return mapping

    def _parts(self, key: _StreamKey) -> list[tuple[int, Path]]:
        """All part files of a stream on disk, in part order."""
        listing = self._siblings.get(key.directory)
        if listing is None:
            listing = {}
            for p in key.directory.iterdir():
                if p.is_file() and p.suffix.lower() == ".csv":
                    base, part = _split_name(p)
                    listing.setdefault(base, []).append((part, p))
            for parts in listing.values():
                parts.sort()
            self._siblings[key.directory] = listing
        return listing.get(key.base, [])

    def _carry_in(self, key: _StreamKey, part: int) -> _Run:
        """The ordinal run a stream is in just before ``part``, so numbering continues across part boundaries.

        After the previous part was parsed in this import its run is reused. Otherwise (a part imported on its
        own, or parts skipped) the earlier parts on disk are read back to the start of the run that reaches
        into this part, which gives the same ids as importing the whole stream.
        """
        parts = self._parts(key)
        earlier = parts[: bisect.bisect_left(parts, part, key=lambda item: item[0])]
        if not earlier:
            return _Run()
        seen = self._runs.get(key)
        if seen is not None and seen[0] == earlier[-1][0]:
            return seen[1].copy()
        minute: datetime | None = None
        counts: Counter[tuple[str, str]] = Counter()
        for _, earlier_path in reversed(earlier):
            rows = self._keys(earlier_path)
            if not rows:
                continue  # an empty part does not end a run
            if minute is None:
                minute = rows[-1][0]
            elif rows[-1][0] != minute:
                break
            start = len(rows)
            while start > 0 and rows[start - 1][0] == minute:
                start -= 1
            counts.update((author, content) for _, author, content in rows[start:])
            if start > 0:
                break
        return _Run(minute, dict(counts))

    def _keys(self, path: Path) -> list[tuple[datetime, str, str]]:
        """(minute, author id, content) of every record of an earlier part, for ``_carry_in``."""
        text = read_export_text(path)
        if not text.strip():
            return []
        keys: list[tuple[datetime, str, str]] = []
        for line, row in _csv_records(path, text):
            try:
                minute = self._date(row[2])[1]
            except ValueError as exc:
                raise CorruptExportError(path, line, str(exc)) from None
            keys.append((minute, row[0], row[3]))
        return keys

    # --- JSON --------------------------------------------------------------------------------------------------

    def _parse_json(self, path: Path) -> ParsedFile:
        size = path.stat().st_size
        if self.chunk_bytes > 0 and size > min(self.stream_bytes, RUNS_BYTES):
            parsed = self._parse_json_runs(path)
            if parsed is not None:
                return parsed
        if size > self.stream_bytes:
            return self._parse_json_stream(path)
        raw = path.read_bytes()
        if not raw.removeprefix(_BOM).strip():
            return ParsedFile(path, empty=True)
        doc = load_json_bytes(path, raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
            raise CorruptExportError(path, 1, _NOT_DCE_JSON)
        channel = _json_channel(path, doc.get("channel"))
        return self._json_messages(path, channel, doc["messages"])

    def _parse_json_runs(self, path: Path) -> ParsedFile | None:
        """``_parse_json`` for a file laid out as DiscordChatExporter writes it: read in runs of messages.

        Returns None for any other layout, and for any file with something wrong in it: it is then read whole
        or streamed with ijson, which find and report what is wrong exactly as they always have.
        """
        try:
            channel, runs = _json_runs(path, self.chunk_bytes)
        except _NotDceLayout:
            return None
        try:
            return self._json_messages(path, _json_channel(path, channel), runs)
        except _NotDceLayout:
            return None  # a later run was not what it seemed: start again, the careful way

    def _parse_json_stream(self, path: Path) -> ParsedFile:
        """``_parse_json`` for a big file: the messages are read one at a time, never the whole document."""
        with path.open("rb") as f:
            if f.read(3) != _BOM:
                f.seek(0)
            start = f.tell()
            try:
                channel_doc = _json_header(path, f)
                f.seek(start)
                if channel_doc is _MISSING:
                    # "channel" after "messages": unusual, but valid JSON; look for it to the end of the file.
                    channel_doc = next(ijson.items(f, "channel", use_float=True), None)
                    f.seek(start)
                channel = _json_channel(path, channel_doc)
                return self._json_messages(path, channel, ijson.items(f, "messages.item", use_float=True))
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                raise _stream_error(path, exc) from None

    def _json_messages(self, path: Path, channel: ChannelRef, messages: Iterable[Any]) -> ParsedFile:
        out = ParsedFile(path)
        # Replies resolve against every earlier message of the channel, also those of earlier files; this file's
        # own are kept apart and only added when the whole file has parsed.
        earlier = self._json_authors.setdefault(channel.channel_id, {})
        authors: dict[str, str] = {}
        events = out.events
        count = 0
        index = -1
        try:
            for index, message in enumerate(messages):  # noqa: B007 (``index`` names the message that failed)
                if type(message) is not dict:
                    raise _FieldError(": expected an object")
                event = self._json_event(message, channel, earlier, authors, out)
                if event is not None:
                    events.append(event)
                    count += type(event) is MessageEvent
        except _FieldError as exc:
            what = str(exc)
            # json keeps no positions: the line is found again, only on this error path.
            line = json_item_line(read_export_text(path), "messages", index) or 1
            sep = "" if what.startswith(":") else "."
            raise CorruptExportError(path, line, f"messages[{index}]{sep}{what}") from None
        out.messages = count
        out.empty = index < 0
        earlier.update(authors)
        return out

    def _json_member(self, doc: dict[str, Any]) -> MemberRef:
        """The author of a JSON message; one ``MemberRef`` per distinct (id, shown name, bot flag)."""
        author_id = doc.get("id")
        if type(author_id) is not str:
            author_id = _snowflake(author_id, "author.id")  # a number becomes its digits; anything else fails
        name = doc.get("nickname") or doc.get("name")
        if not isinstance(name, str):
            name = None
        key = (author_id, name, bool(doc.get("isBot")))
        ref = self._json_refs.get(key)
        if ref is None:
            ref = self._json_refs[key] = MemberRef(_snowflake(author_id, "author.id"), name, key[2])
        return ref

    def _json_event(
        self,
        message: dict[str, Any],
        channel: ChannelRef,
        earlier: dict[str, str],
        authors: dict[str, str],
        out: ParsedFile,
    ) -> ActivityEvent | None:
        get = message.get
        message_id = get("id")
        if type(message_id) is not str or not message_id.isdigit():
            message_id = _snowflake(message_id, "id")
        at = _json_time(get("timestamp"), "timestamp")
        author_doc = get("author")
        if type(author_doc) is not dict:
            raise _FieldError("author: missing (expected an object with 'id')")
        author = self._json_member(author_doc)
        author_id = author.user_id
        kind = get("type") or "Default"
        if type(kind) is not str:
            kind = str(kind)
        if kind not in _MESSAGE_KINDS:
            # DCE writes known kinds by name and kinds it does not know by number; Discord numbers 1-18 are system
            # notifications, the rest (replies, slash-command responses, thread starters ...) are real messages.
            if kind in ("GuildMemberJoin", "7"):
                out.members.add(author_id)
                return MemberJoined(Platform.DISCORD, self.community, author, at, channel)
            if kind in _SYSTEM_KINDS or (kind.isdigit() and 1 <= int(kind) <= 18):
                out.skipped[SKIP_SYSTEM] += 1
                return None
        out.members.add(author_id)
        authors[message_id] = author_id
        content = get("content", "")
        if type(content) is not str:
            raise _FieldError(f"content: expected a string, got {type(content).__name__}")
        attachments = get("attachments") or ()
        if type(attachments) is not list and attachments != ():
            raise _FieldError("attachments: expected a list")
        reply_to: str | None = None
        reply_user: str | None = None
        reference = get("reference")
        if isinstance(reference, dict) and reference.get("messageId") and reference.get("type") != "Forward":
            reply_to = _snowflake(reference.get("messageId"), "reference.messageId")
            if reference.get("channelId") in (None, channel.channel_id):
                reply_user = authors.get(reply_to) or earlier.get(reply_to)
        length, has_code, has_link = _facts(content)
        try:
            return MessageEvent(
                platform=Platform.DISCORD,
                community=self.community,
                message_id=message_id,
                channel=channel,
                author=author,
                occurred_at=at,
                length=length,
                has_code=has_code,
                has_link=has_link,
                reply_to_message_id=reply_to,
                reply_to_user_id=reply_user,
                attachments=len(attachments),
                text=content if self.store_text else None,
                imported_reactions=reaction_total(get("reactions")),
            )
        except EventError as exc:
            raise _FieldError(str(exc)) from None


STREAM_BYTES = 64 * 1024 * 1024
"""JSON exports bigger than this are read message by message (ijson) rather than as one document (orjson): as
Python objects, a document of a million messages takes gigabytes, its events a fraction of that."""

RUNS_BYTES = 1024 * 1024
"""JSON exports bigger than this are read in runs of messages when they have DCE's layout (``_json_runs``):
30% faster than orjson on the whole document even for a 22 MB export, and never the whole document in memory."""

CHUNK_BYTES = 256 * 1024
"""A streamed export with DCE's layout is read this much at a time, and the whole messages in it parsed at once
with orjson (a third less time than ijson for the whole parse). Small runs stay in the CPU's caches until they
are turned into events: runs of 8 MB took 45% longer to parse, 64 KB to 1 MB about the same as 256 KB."""

_BOM = b"\xef\xbb\xbf"
_MISSING = object()
# DCE indents with two spaces: messages are the items of an array at depth 1, so each starts and ends on a line
# indented by four. A raw line break cannot occur inside a JSON string, so these bytes are always structure.
_MESSAGES_START = b'"messages": ['
_MESSAGE_END = b"\n    },"
_MESSAGES_END = b"\n  ]"


class _NotDceLayout(Exception):
    """A streamed export is not laid out (or not valid) the way ``_json_runs`` reads: read it with ijson."""


def _orjson(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _NotDceLayout from None


def _json_runs(path: Path, chunk_bytes: int) -> tuple[object, Iterator[Any]]:
    """The ``channel`` of a streamed export with DCE's layout and an iterator over its messages, run by run.

    The file is read ``chunk_bytes`` at a time; the complete messages in what was read (up to the last line
    that closes one, ``_MESSAGE_END``) are parsed with orjson as one array. The pieces are only taken for what
    they seem when JSON agrees: the text before the messages array, closed with ``]}``, must be an object whose
    ``messages`` is that empty array; every run of messages must parse as the items of an array; and the text
    around the array must make an object again. Cutting anywhere else than between two messages would leave
    a run's brackets unbalanced, so when every piece parses, the messages are exactly the document's.

    Raises:
        _NotDceLayout: The layout is not DCE's, or something in the file is not valid (checked before the
            channel is returned, or while iterating): the caller reads the file with ijson instead.
    """
    f = path.open("rb")
    try:
        data = f.read(max(chunk_bytes, 1 << 16))
        data = data.removeprefix(_BOM)
        at = data.find(_MESSAGES_START)
        if at < 0:
            raise _NotDceLayout
        head = data[: at + len(_MESSAGES_START)]
        header = _orjson(head + b"]}")
        if type(header) is not dict or header.get("messages") != [] or "channel" not in header:
            raise _NotDceLayout
    except BaseException:
        f.close()
        raise
    rest = data[len(head) :]

    def runs() -> Iterator[list[Any]]:
        nonlocal rest
        buffer = rest
        with f:
            while True:
                block = f.read(chunk_bytes)
                buffer += block
                end = buffer.rfind(_MESSAGE_END)
                if block and end < 0:
                    if len(buffer) > 4 * chunk_bytes + (1 << 16):
                        raise _NotDceLayout  # no message ends where DCE ends them: not its layout
                    continue
                if not block:
                    break
                cut = end + len(_MESSAGE_END) - 1  # keeps the "}", drops the ","
                yield _orjson(b"[" + buffer[:cut] + b"]")
                buffer = buffer[cut + 1 :]
        # The last messages, the end of the array and whatever follows it.
        close = buffer.rfind(_MESSAGES_END)
        if close < 0:
            raise _NotDceLayout
        last = _orjson(b"[" + buffer[:close] + b"]")
        whole = _orjson(head + b"]" + buffer[close + len(_MESSAGES_END) :])
        if type(whole) is not dict or whole.get("messages") != []:
            raise _NotDceLayout  # e.g. a second "messages" member after the first
        yield last

    # Runs are lists: chaining them in C spares a generator step per message.
    return header["channel"], chain.from_iterable(runs())


_NOT_DCE_JSON = "not a DiscordChatExporter JSON export: expected an object with 'channel' and 'messages'"
_MESSAGE_KINDS = frozenset({"Default", "Reply"})


def _json_header(path: Path, f: BinaryIO) -> Any:
    """The ``channel`` object of a streamed export, read up to the start of its ``messages`` array.

    Returns ``_MISSING`` when ``channel`` comes after ``messages``.

    Raises:
        CorruptExportError: The document is not an object with a ``messages`` array.
    """
    events = ijson.parse(f, use_float=True)
    if next(events, None) != ("", "start_map", None):
        raise CorruptExportError(path, 1, _NOT_DCE_JSON)
    channel: Any = _MISSING
    for prefix, event, value in events:
        if prefix != "" or event != "map_key":
            break  # the end of the top-level object: it had no "messages"
        builder = ijson.ObjectBuilder()
        depth = 0
        for _, inner, inner_value in events:
            if value == "messages":
                if inner != "start_array":
                    raise CorruptExportError(path, 1, _NOT_DCE_JSON)
                return channel
            builder.event(inner, inner_value)
            depth += inner in ("start_map", "start_array")
            depth -= inner in ("end_map", "end_array")
            if depth == 0:
                break
        if value == "channel":
            channel = builder.value
    raise CorruptExportError(path, 1, _NOT_DCE_JSON)


def _stream_error(path: Path, exc: Exception) -> CorruptExportError:
    """The error of a streamed export that is not valid JSON, worded (and located) as for a small file."""
    text = read_export_text(path)  # raises for bytes that are not UTF-8
    load_json_export(path, text)  # raises with the line and column of the JSON error
    return CorruptExportError(path, 1, f"not valid JSON: {exc}")


_SYSTEM_KINDS = frozenset(
    {
        "RecipientAdd",
        "RecipientRemove",
        "Call",
        "ChannelNameChange",
        "ChannelIconChange",
        "ChannelPinnedMessage",
        "ThreadCreated",
    }
)


def _snowflake(value: object, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit():
        if value is None:
            raise _FieldError(f"{name}: missing (expected a Discord id)")
        raise _FieldError(f"{name}: expected a Discord id (digits), got {value!r}")
    return value


def _json_time(value: object, name: str) -> datetime:
    if value is None:
        raise _FieldError(f"{name}: missing (expected an ISO 8601 time like '2020-09-27T17:18:34.454+00:00')")
    if not isinstance(value, str):
        raise _FieldError(f"{name}: expected an ISO 8601 time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _FieldError(
            f"{name}: expected an ISO 8601 time like '2020-09-27T17:18:34+00:00', got {value!r}"
        ) from None
    if parsed.tzinfo is UTC and EARLIEST_TIME <= parsed < LATEST_TIME:
        return parsed  # what DCE writes with --utc (and most exports): nothing to convert
    return _iso_to_utc(parsed, name, value)


def _json_channel(path: Path, value: object) -> ChannelRef:
    if not isinstance(value, dict):
        raise CorruptExportError(path, 1, "channel: missing (expected an object with 'id' and 'name')")
    try:
        channel_id = _snowflake(value.get("id"), "channel.id")
    except _FieldError as exc:
        raise CorruptExportError(path, 1, str(exc)) from None
    name = value.get("name") if isinstance(value.get("name"), str) else None
    parent: str | None = None
    # DCE's schema predates threads: for a thread, "categoryId" is the channel the thread hangs off.
    if "Thread" in str(value.get("type") or "") and str(value.get("categoryId") or "").isdigit():
        parent = str(value["categoryId"])
    return ChannelRef(channel_id, name=name, parent_id=parent)
