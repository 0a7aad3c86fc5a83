"""DiscordChatExporter JSON: a big export read message by message gives what a small one read whole gives.

Big JSON files are streamed (ijson) and small ones parsed whole (orjson); ``stream_bytes=0`` makes the reader
stream the hand-written fixtures, so every case below runs both ways and must agree, errors included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.importers import CorruptExportError, ParsedFile
from bot.importers.discord_export import DiscordExportReader
from bot.importers.runner import import_discord_export
from storage.events import MessageEvent
from storage.ingest import IngestStore
from tests.conftest import COMMUNITY

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
CHANNEL = FIXTURES / "dce_channel.json"
WHOLE, STREAMED = None, 0
WAYS = pytest.mark.parametrize("stream_bytes", [WHOLE, STREAMED], ids=["whole", "streamed"])


def fixture_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(CHANNEL.read_text(encoding="utf-8"))
    return doc


def parse(path: Path, stream_bytes: int | None) -> ParsedFile:
    return DiscordExportReader(COMMUNITY, stream_bytes=stream_bytes).parse(path)


def error_of(path: Path, stream_bytes: int | None) -> str:
    with pytest.raises(CorruptExportError) as caught:
        parse(path, stream_bytes)
    return str(caught.value)


def test_streamed_and_whole_files_give_the_same_events() -> None:
    whole, streamed = parse(CHANNEL, WHOLE), parse(CHANNEL, STREAMED)
    assert streamed.events == whole.events
    assert (streamed.messages, streamed.members, streamed.skipped) == (whole.messages, whole.members, whole.skipped)
    assert whole.messages == 4 and len(whole.events) == 5


@pytest.mark.parametrize("name", ["bad_syntax.json", "bad_missing_timestamp.json"])
def test_streamed_and_whole_files_fail_with_the_same_error(name: str) -> None:
    path = FIXTURES / name
    assert error_of(path, STREAMED) == error_of(path, WHOLE)
    assert error_of(path, STREAMED).startswith(f"{path}:")


@WAYS
def test_a_bom_is_dropped(tmp_path: Path, stream_bytes: int | None) -> None:
    path = tmp_path / "help.json"
    path.write_bytes(b"\xef\xbb\xbf" + CHANNEL.read_bytes())
    assert parse(path, stream_bytes).events == parse(CHANNEL, WHOLE).events


@WAYS
def test_channel_after_messages_is_still_found(tmp_path: Path, stream_bytes: int | None) -> None:
    doc = fixture_doc()
    reordered = {"messages": doc["messages"], "channel": doc["channel"]}
    path = tmp_path / "help.json"
    path.write_text(json.dumps(reordered, indent=2), encoding="utf-8")
    assert parse(path, stream_bytes).events == parse(CHANNEL, WHOLE).events


@WAYS
@pytest.mark.parametrize(
    "content", ["[]", '{"channel": {"id": "1", "name": "x"}}', '{"channel": {"id": "1"}, "messages": {}}', "3"]
)
def test_not_an_export(tmp_path: Path, stream_bytes: int | None, content: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    assert error_of(path, stream_bytes) == (
        f"{path}:1: not a DiscordChatExporter JSON export: expected an object with 'channel' and 'messages'"
    )


@WAYS
def test_not_utf8_names_the_line(tmp_path: Path, stream_bytes: int | None) -> None:
    raw = CHANNEL.read_bytes().replace(b"Use -k", b"Use \xff-k")
    path = tmp_path / "help.json"
    path.write_bytes(raw)
    line = raw[: raw.index(b"\xff")].count(b"\n") + 1
    assert error_of(path, stream_bytes).startswith(f"{path}:{line}: not UTF-8 text")


@WAYS
def test_truncated_file_is_invalid_json(tmp_path: Path, stream_bytes: int | None) -> None:
    raw = CHANNEL.read_bytes()
    path = tmp_path / "help.json"
    path.write_bytes(raw[: len(raw) // 2])
    assert ": not valid JSON: " in error_of(path, stream_bytes)


@WAYS
def test_numeric_ids_and_a_message_that_is_not_an_object(tmp_path: Path, stream_bytes: int | None) -> None:
    doc = fixture_doc()
    doc["messages"][1]["author"]["id"] = int(doc["messages"][1]["author"]["id"])
    path = tmp_path / "help.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    assert parse(path, stream_bytes).events == parse(CHANNEL, WHOLE).events

    doc["messages"][2] = "hello"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    assert error_of(path, stream_bytes).endswith(": messages[2]: expected an object")


def split_channel(tmp_path: Path) -> tuple[Path, Path]:
    """The fixture's channel as two part files: the question in the first, its answer in the second."""
    doc = fixture_doc()
    first, second = dict(doc), dict(doc)
    first["messages"], second["messages"] = doc["messages"][:2], doc["messages"][2:]
    paths = (tmp_path / "help [part 1].json", tmp_path / "help [part 2].json")
    for path, part in zip(paths, (first, second), strict=True):
        path.write_text(json.dumps(part, indent=2), encoding="utf-8")
    return paths


@WAYS
def test_a_reply_resolves_to_a_message_of_an_earlier_file(tmp_path: Path, stream_bytes: int | None) -> None:
    first, second = split_channel(tmp_path)
    reader = DiscordExportReader(COMMUNITY, stream_bytes=stream_bytes)
    reader.parse(first)
    answer = reader.parse(second).events[0]
    assert isinstance(answer, MessageEvent)
    assert (answer.reply_to_message_id, answer.reply_to_user_id) == ("1210000000000000002", "800000000000000001")


def test_a_file_that_fails_teaches_the_reader_no_reply_targets(tmp_path: Path) -> None:
    first, second = split_channel(tmp_path)
    good = first.read_text(encoding="utf-8")
    first.write_text(good.replace('"timestamp": "2024-03-04T09:01:30.250+00:00"', '"timestamp": 5'), encoding="utf-8")
    reader = DiscordExportReader(COMMUNITY)
    with pytest.raises(CorruptExportError):
        reader.parse(first)
    answer = reader.parse(second).events[0]
    assert isinstance(answer, MessageEvent)
    assert answer.is_reply and answer.reply_to_user_id is None


@pytest.mark.storage
def test_parts_are_stored_with_replies_across_files_and_again_add_nothing(
    store: IngestStore, engine: Engine, tmp_path: Path
) -> None:
    first, second = split_channel(tmp_path)
    summary = import_discord_export(store, COMMUNITY, [tmp_path])
    assert (summary.files, summary.messages_read, summary.messages, summary.joins) == (2, 4, 4, 1)
    with engine.connect() as conn:
        replies = conn.execute(
            text(
                "SELECT m.platform_message_id, r.platform_user_id FROM messages m "
                "JOIN members r ON r.id = m.reply_to_member_id"
            )
        ).all()
    assert [tuple(r) for r in replies] == [("1210000000000000003", "800000000000000001")]
    again = import_discord_export(store, COMMUNITY, [first, second])
    assert (again.messages, again.joins, again.conflicts) == (0, 0, 0)
    assert again.duplicates == 5  # the 4 messages and the join
