"""DiscordChatExporter JSON: a big export read in pieces gives what a small one read whole gives.

Small JSON files are parsed whole (orjson); big ones are streamed: in runs of messages parsed with orjson when
the file has DCE's layout, else message by message with ijson. ``stream_bytes=0`` makes the reader stream the
hand-written fixtures (``chunk_bytes=64``: a run every message or two; ``chunk_bytes=0``: ijson only), so every
case below runs all three ways and must agree, errors included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.importers import CorruptExportError, ParsedFile, discord_export
from bot.importers.discord_export import DiscordExportReader
from bot.importers.runner import import_discord_export
from storage.events import MessageEvent
from storage.ingest import IngestStore
from tests.conftest import COMMUNITY

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
CHANNEL = FIXTURES / "dce_channel.json"
WHOLE, STREAMED, IJSON = "whole", "streamed", "ijson"
WAYS = pytest.mark.parametrize("stream_bytes", [WHOLE, STREAMED, IJSON])


def reader(way: str) -> DiscordExportReader:
    if way == WHOLE:
        return DiscordExportReader(COMMUNITY)
    return DiscordExportReader(COMMUNITY, stream_bytes=0, chunk_bytes=64 if way == STREAMED else 0)


def fixture_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(CHANNEL.read_text(encoding="utf-8"))
    return doc


def parse(path: Path, stream_bytes: str) -> ParsedFile:
    return reader(stream_bytes).parse(path)


def error_of(path: Path, stream_bytes: str) -> str:
    with pytest.raises(CorruptExportError) as caught:
        parse(path, stream_bytes)
    return str(caught.value)


@pytest.mark.parametrize("way", [STREAMED, IJSON])
def test_streamed_and_whole_files_give_the_same_events(way: str) -> None:
    whole, streamed = parse(CHANNEL, WHOLE), parse(CHANNEL, way)
    assert streamed.events == whole.events
    assert (streamed.messages, streamed.members, streamed.skipped) == (whole.messages, whole.members, whole.skipped)
    assert whole.messages == 4 and len(whole.events) == 5


@pytest.mark.parametrize("name", ["bad_syntax.json", "bad_missing_timestamp.json"])
def test_streamed_and_whole_files_fail_with_the_same_error(name: str) -> None:
    path = FIXTURES / name
    assert error_of(path, STREAMED) == error_of(path, IJSON) == error_of(path, WHOLE)
    assert error_of(path, STREAMED).startswith(f"{path}:")


@WAYS
def test_a_bom_is_dropped(tmp_path: Path, stream_bytes: str) -> None:
    path = tmp_path / "help.json"
    path.write_bytes(b"\xef\xbb\xbf" + CHANNEL.read_bytes())
    assert parse(path, stream_bytes).events == parse(CHANNEL, WHOLE).events


@WAYS
def test_channel_after_messages_is_still_found(tmp_path: Path, stream_bytes: str) -> None:
    doc = fixture_doc()
    reordered = {"messages": doc["messages"], "channel": doc["channel"]}
    path = tmp_path / "help.json"
    path.write_text(json.dumps(reordered, indent=2), encoding="utf-8")
    assert parse(path, stream_bytes).events == parse(CHANNEL, WHOLE).events


@WAYS
@pytest.mark.parametrize(
    "content", ["[]", '{"channel": {"id": "1", "name": "x"}}', '{"channel": {"id": "1"}, "messages": {}}', "3"]
)
def test_not_an_export(tmp_path: Path, stream_bytes: str, content: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    assert error_of(path, stream_bytes) == (
        f"{path}:1: not a DiscordChatExporter JSON export: expected an object with 'channel' and 'messages'"
    )


@WAYS
def test_not_utf8_names_the_line(tmp_path: Path, stream_bytes: str) -> None:
    raw = CHANNEL.read_bytes().replace(b"Use -k", b"Use \xff-k")
    path = tmp_path / "help.json"
    path.write_bytes(raw)
    line = raw[: raw.index(b"\xff")].count(b"\n") + 1
    assert error_of(path, stream_bytes).startswith(f"{path}:{line}: not UTF-8 text")


@WAYS
def test_truncated_file_is_invalid_json(tmp_path: Path, stream_bytes: str) -> None:
    raw = CHANNEL.read_bytes()
    path = tmp_path / "help.json"
    path.write_bytes(raw[: len(raw) // 2])
    assert ": not valid JSON: " in error_of(path, stream_bytes)


@WAYS
def test_numeric_ids_and_a_message_that_is_not_an_object(tmp_path: Path, stream_bytes: str) -> None:
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
def test_a_reply_resolves_to_a_message_of_an_earlier_file(tmp_path: Path, stream_bytes: str) -> None:
    first, second = split_channel(tmp_path)
    parser = reader(stream_bytes)
    parser.parse(first)
    answer = parser.parse(second).events[0]
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


def many_messages(count: int) -> dict[str, Any]:
    doc = fixture_doc()
    template = doc["messages"][2]  # a plain message, no reply
    doc["messages"] = [
        {**template, "id": str(1_300_000_000_000_000_000 + i), "content": f"message {i}, with \\n and }}, inside"}
        for i in range(count)
    ]
    return doc


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_export_in_dce_layout_is_read_in_runs_not_with_ijson(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newline: str
) -> None:
    path = tmp_path / "big.json"
    text = json.dumps(many_messages(300), indent=2, ensure_ascii=False)
    path.write_bytes(text.replace("\n", newline).encode())
    whole = parse(path, WHOLE)

    def no_ijson(self: DiscordExportReader, path: Path) -> ParsedFile:
        raise AssertionError("read with ijson")

    monkeypatch.setattr(DiscordExportReader, "_parse_json_stream", no_ijson)
    for chunk_bytes in (64, 1000, 1 << 20):
        runs = DiscordExportReader(COMMUNITY, stream_bytes=0, chunk_bytes=chunk_bytes).parse(path)
        assert runs.events == whole.events
        assert len(runs.events) == 300


@pytest.mark.parametrize("indent", [None, 4, "\t"])
def test_other_layouts_are_read_with_ijson_and_give_the_same_events(tmp_path: Path, indent: int | str | None) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(many_messages(50), indent=indent), encoding="utf-8")
    assert parse(path, STREAMED).events == parse(path, WHOLE).events == parse(path, IJSON).events


def test_a_second_messages_member_is_read_as_ijson_reads_it(tmp_path: Path) -> None:
    doc = many_messages(3)
    text = json.dumps(doc, indent=2)
    extra = json.dumps(many_messages(2)["messages"], indent=2).replace("\n", "\n  ")
    path = tmp_path / "twice.json"
    path.write_text(text[: text.rindex("\n}")] + f',\n  "messages": {extra}\n}}\n', encoding="utf-8")
    assert parse(path, STREAMED).events == parse(path, IJSON).events


def test_a_mid_sized_export_in_another_layout_is_still_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "minified.json"
    path.write_text(json.dumps(many_messages(50)), encoding="utf-8")
    expected = parse(path, WHOLE).events
    monkeypatch.setattr(discord_export, "RUNS_BYTES", 0)  # as if the file were over the size for runs

    def no_ijson(self: DiscordExportReader, path: Path) -> ParsedFile:
        raise AssertionError("read with ijson")

    monkeypatch.setattr(DiscordExportReader, "_parse_json_stream", no_ijson)
    assert DiscordExportReader(COMMUNITY).parse(path).events == expected
