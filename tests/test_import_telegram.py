"""Telegram Desktop ``result.json`` imports: the export is written here, in the documented format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.importers import CorruptExportError, ExportPathError
from bot.importers.runner import import_telegram_export
from bot.importers.telegram_export import (
    SKIP_CHANNEL_POSTS,
    SKIP_SERVICE,
    SKIP_UNKNOWN_NAMES,
    parse_telegram_export,
    telegram_chat_id,
)
from storage.events import MemberJoined, MemberLeft, MessageEvent, Platform
from storage.ingest import IngestStore
from tests.conftest import COMMUNITY

CHAT = "-1001234567890"
T0 = 1709542800  # 2024-03-04 09:00 UTC
storage = pytest.mark.storage


def at(minutes: int) -> dict[str, str]:
    unix = T0 + 60 * minutes
    local = datetime.fromtimestamp(unix, UTC).replace(tzinfo=None).isoformat()
    return {"date": local, "date_unixtime": str(unix)}


def message(mid: int, minutes: int, sender: str, from_id: str, body: Any = "", **extra: Any) -> dict[str, Any]:
    return {"id": mid, "type": "message", **at(minutes), "from": sender, "from_id": from_id, "text": body, **extra}


def service(mid: int, minutes: int, action: str, actor: str, actor_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "type": "service",
        **at(minutes),
        "actor": actor,
        "actor_id": actor_id,
        "action": action,
        **extra,
    }


def export() -> dict[str, Any]:
    """A supergroup export with every case the importer handles."""
    return {
        "name": "Py Cohort",
        "type": "private_supergroup",
        "id": 1234567890,
        "messages": [
            service(1, 0, "join_group_by_link", "Alice", "user101", inviter="Group"),
            message(2, 1, "Alice", "user101", "hello everyone", reactions=[{"emoji": "👍", "count": 2}]),
            message(
                3,
                2,
                "Bob",
                "user102",
                [
                    "try ",
                    {"type": "code", "text": "x = 1"},
                    " and ",
                    {"type": "text_link", "text": "the docs", "href": "https://docs.python.org"},
                ],
                reply_to_message_id=2,
                reactions=[
                    {
                        "type": "emoji",
                        "count": 3,
                        "emoji": "🔥",
                        "recent": [{"from": "Alice", "from_id": "user101", "date": "2024-03-04T09:03:00"}],
                    },
                    {"type": "custom_emoji", "count": 1, "document_id": "files/sticker.webp"},
                ],
            ),
            message(4, 3, "Py Cohort", "channel1234567890", "Announcement from an anonymous admin"),
            service(5, 4, "invite_members", "Alice", "user101", members=["Bob", "Carol"]),
            service(6, 5, "invite_members", "Dave", "user104", members=["Dave"]),
            message(7, 6, "Dave", "user104", "", photo="photos/photo_1.jpg", width=800, height=600),
            service(8, 7, "remove_members", "Bob", "user102", members=["Bob"]),
            service(9, 8, "pin_message", "Alice", "user101", message_id=2),
            message(10, 9, "Eve", "user105", "see https://example.com and ```print(1)```", reply_to_message_id=99999),
            message(11, 10, "Sam", "user106", "I am one Sam"),
            message(12, 11, "Sam", "user107", "I am another Sam"),
            service(13, 12, "remove_members", "Alice", "user101", members=["Sam"]),
            message(14, 13, "Bob", "user102", "replying to the admin", reply_to_message_id=4),
        ],
    }


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def result_json(tmp_path: Path) -> Path:
    return write(tmp_path / "result.json", export())


def test_chat_ids_line_up_with_the_bot_api() -> None:
    assert telegram_chat_id("private_supergroup", 1234567890) == CHAT
    assert telegram_chat_id("public_supergroup", 1234567890) == CHAT
    assert telegram_chat_id("private_group", 4242) == "-4242"
    with pytest.raises(ValueError, match="not a group"):
        telegram_chat_id("personal_chat", 1)


def test_export_becomes_events(result_json: Path) -> None:
    parsed = parse_telegram_export(result_json, COMMUNITY)
    kinds = [
        (type(e).__name__, e.message_id if isinstance(e, MessageEvent) else e.member.user_id)
        for e in parsed.events
        if isinstance(e, MessageEvent | MemberJoined | MemberLeft)
    ]
    assert kinds == [
        ("MemberJoined", "101"),
        ("MessageEvent", "2"),
        ("MessageEvent", "3"),
        ("MemberJoined", "102"),  # Bob invited by Alice: his id is known from his messages
        ("MemberJoined", "104"),  # Dave joined by himself: the actor
        ("MessageEvent", "7"),
        ("MemberLeft", "102"),
        ("MessageEvent", "10"),
        ("MessageEvent", "11"),
        ("MessageEvent", "12"),
        ("MessageEvent", "14"),
    ]
    assert all(e.platform is Platform.TELEGRAM and e.community == COMMUNITY for e in parsed.events)
    messages = {e.message_id: e for e in parsed.events if isinstance(e, MessageEvent)}
    assert {e.channel.channel_id for e in messages.values()} == {CHAT}
    assert messages["2"].channel.name == "Py Cohort"
    hello, bob, photo, eve, to_admin = messages["2"], messages["3"], messages["7"], messages["10"], messages["14"]
    assert hello.occurred_at == datetime(2024, 3, 4, 9, 1, tzinfo=UTC)
    assert (hello.length, hello.has_code, hello.has_link, hello.imported_reactions) == (14, False, False, 2)
    assert hello.author.display_name == "Alice"
    # Entity-list text: plain text is the concatenation; entity types give code and link.
    assert (bob.length, bob.has_code, bob.has_link) == (len("try x = 1 and the docs"), True, True)
    assert (bob.reply_to_message_id, bob.reply_to_user_id) == ("2", "101")
    assert bob.imported_reactions == 4
    assert (photo.attachments, photo.length) == (1, 0)
    assert (eve.has_code, eve.has_link, eve.reply_to_message_id, eve.reply_to_user_id) == (True, True, "99999", None)
    assert eve.is_reply
    assert (to_admin.reply_to_message_id, to_admin.reply_to_user_id) == ("4", None)  # a channel post: not a member
    assert all(e.text is None for e in messages.values())
    assert parsed.messages == 7
    assert parsed.members == {"101", "102", "104", "105", "106", "107"}
    assert dict(parsed.skipped) == {SKIP_CHANNEL_POSTS: 1, SKIP_UNKNOWN_NAMES: 2, SKIP_SERVICE: 1}
    joins = [e for e in parsed.events if isinstance(e, MemberJoined)]
    leaves = [e for e in parsed.events if isinstance(e, MemberLeft)]
    assert [j.occurred_at for j in joins] == [datetime(2024, 3, 4, 9, m, tzinfo=UTC) for m in (0, 4, 5)]
    assert [(e.member.user_id, e.channel.channel_id if e.channel else None) for e in leaves] == [("102", CHAT)]


def test_text_is_put_on_events_only_when_asked(result_json: Path) -> None:
    parsed = parse_telegram_export(result_json, COMMUNITY, store_text=True)
    texts = {e.message_id: e.text for e in parsed.events if isinstance(e, MessageEvent)}
    assert texts["3"] == "try x = 1 and the docs"
    assert texts["7"] == ""


def test_old_export_without_unix_times_uses_date_as_utc(tmp_path: Path) -> None:
    doc = export()
    del doc["messages"][1]["date_unixtime"]
    parsed = parse_telegram_export(write(tmp_path / "result.json", doc), COMMUNITY)
    hello = next(e for e in parsed.events if isinstance(e, MessageEvent))
    assert hello.occurred_at == datetime(2024, 3, 4, 9, 1, tzinfo=UTC)


def test_basic_group_chat_id(tmp_path: Path) -> None:
    doc = export() | {"type": "private_group", "id": 4242}
    parsed = parse_telegram_export(write(tmp_path / "result.json", doc), COMMUNITY)
    assert {e.channel.channel_id for e in parsed.events if isinstance(e, MessageEvent)} == {"-4242"}


def test_empty_file_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(b"")
    parsed = parse_telegram_export(path, COMMUNITY)
    assert parsed.empty and parsed.events == []


# --- corrupt exports -------------------------------------------------------------------------------------------


def test_bad_json_reports_the_decoder_line(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{\n "name": "Py Cohort",\n "type": "private_supergroup",\n "id": 1\n "messages": []\n}\n')
    with pytest.raises(CorruptExportError) as caught:
        parse_telegram_export(path, COMMUNITY)
    assert str(caught.value) == f"{path}:5: not valid JSON: Expecting ',' delimiter (column 2)"


@pytest.mark.parametrize(
    ("index", "field", "value", "message"),
    [
        (
            2,
            "date_unixtime",
            "yesterday",
            "messages[2].date_unixtime: expected seconds since 1970 like '1700000000', got 'yesterday'",
        ),
        (2, "from_id", None, "messages[2].from_id: missing (expected 'user<id>')"),
        (2, "text", 42, "messages[2].text: expected a string or a list of strings and entities, got int"),
        (
            2,
            "reactions",
            [{"emoji": "👍"}],
            "messages[2].reactions[0].count: expected a non-negative integer, got None",
        ),
        (4, "members", None, "messages[4].members: expected a list of names for 'invite_members', got None"),
        (2, "type", "sticker", "messages[2].type: expected 'message' or 'service', got 'sticker'"),
        (2, "id", None, "messages[2].id: missing (expected the message's number)"),
    ],
)
def test_malformed_message_names_its_line_and_path(
    tmp_path: Path, index: int, field: str, value: Any, message: str
) -> None:
    doc = export()
    if value is None:
        del doc["messages"][index][field]
        if field == "date_unixtime":
            del doc["messages"][index]["date"]
    else:
        doc["messages"][index][field] = value
    path = write(tmp_path / "result.json", doc)
    with pytest.raises(CorruptExportError) as caught:
        parse_telegram_export(path, COMMUNITY)
    # Each message object starts on a line of its own in the indented export.
    starts = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line == "  {"]
    assert str(caught.value) == f"{path}:{starts[index]}: {message}"


def test_missing_date_is_reported(tmp_path: Path) -> None:
    doc = export()
    del doc["messages"][1]["date"]
    del doc["messages"][1]["date_unixtime"]
    path = write(tmp_path / "result.json", doc)
    with pytest.raises(CorruptExportError, match=r"messages\[1\]\.date: missing"):
        parse_telegram_export(path, COMMUNITY)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"about": "...", "chats": {"list": []}}, "this is a whole-account export"),
        (
            {"name": "Me", "type": "personal_chat", "id": 5, "messages": []},
            "type: chat type 'personal_chat' is not a group",
        ),
        ({"name": "x", "type": "private_supergroup", "messages": []}, "id: expected the chat's number, got None"),
        ([], "not a Telegram chat export"),
    ],
)
def test_not_a_group_export(tmp_path: Path, doc: Any, message: str) -> None:
    path = write(tmp_path / "result.json", doc)
    with pytest.raises(CorruptExportError) as caught:
        parse_telegram_export(path, COMMUNITY)
    assert str(caught.value).startswith(f"{path}:1: {message}")


# --- storing ---------------------------------------------------------------------------------------------------


@storage
def test_import_stores_messages_joins_and_leaves(store: IngestStore, engine: Engine, result_json: Path) -> None:
    summary = import_telegram_export(store, COMMUNITY, result_json)
    assert (summary.files, summary.messages_read, summary.messages, summary.joins, summary.leaves) == (1, 7, 7, 3, 1)
    assert summary.members == 6
    assert summary.skipped_total == 4
    assert "2 × invited/removed members named without an id" in summary.line()
    assert summary.line().endswith(
        "1 × channel posts and anonymous admin messages (not members), "
        "1 × other service messages (pins, title changes, calls ...)"
    )
    with engine.connect() as conn:
        channels = conn.execute(text("SELECT platform, platform_channel_id, name FROM channels")).all()
        rows = conn.execute(
            text(
                "SELECT m.platform_message_id, a.platform_user_id, r.platform_user_id, m.is_reply, m.has_code, "
                "m.has_link, m.attachments, m.text FROM messages m JOIN members a ON a.id = m.member_id "
                "LEFT JOIN members r ON r.id = m.reply_to_member_id ORDER BY m.created_at"
            )
        ).all()
        events = conn.execute(
            text(
                "SELECT mb.platform_user_id, e.kind FROM membership_events e JOIN members mb ON mb.id = e.member_id "
                "ORDER BY e.occurred_at"
            )
        ).all()
        left = conn.execute(text("SELECT last_left_at FROM members WHERE platform_user_id = '102'")).scalar()
    assert [tuple(c) for c in channels] == [("telegram", CHAT, "Py Cohort")]
    assert [tuple(r) for r in rows] == [
        ("2", "101", None, False, False, False, 0, None),
        ("3", "102", "101", True, True, True, 0, None),
        ("7", "104", None, False, False, False, 1, None),
        ("10", "105", None, True, True, True, 0, None),
        ("11", "106", None, False, False, False, 0, None),
        ("12", "107", None, False, False, False, 0, None),
        ("14", "102", None, True, False, False, 0, None),
    ]
    assert [tuple(e) for e in events] == [("101", "join"), ("102", "join"), ("104", "join"), ("102", "leave")]
    assert left is not None

    again = import_telegram_export(store, COMMUNITY, result_json.parent)  # the export folder works too
    assert (again.messages, again.joins, again.leaves, again.duplicates) == (0, 0, 0, 11)


@storage
def test_overlapping_later_export_adds_only_new_messages(store: IngestStore, engine: Engine, tmp_path: Path) -> None:
    doc = export()
    early = write(tmp_path / "early.json", doc | {"messages": doc["messages"][:8]})
    import_telegram_export(store, COMMUNITY, early)
    later = import_telegram_export(store, COMMUNITY, write(tmp_path / "later.json", doc))
    assert (later.messages, later.duplicates) == (4, 7)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 7


@storage
def test_text_is_stored_when_asked(engine: Engine, result_json: Path) -> None:
    with_text = IngestStore(engine, store_text=True)
    with_text.register_community(COMMUNITY, "Europe/Berlin")
    import_telegram_export(with_text, COMMUNITY, result_json, store_text=True)
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT platform_message_id, text FROM messages")).all())
    assert stored["3"] == "try x = 1 and the docs"
    assert stored["2"] == "hello everyone"


@storage
def test_corrupt_export_stores_nothing(store: IngestStore, engine: Engine, tmp_path: Path) -> None:
    doc = export()
    doc["messages"][9]["reactions"] = "lots"
    path = write(tmp_path / "result.json", doc)
    with pytest.raises(CorruptExportError) as caught:
        import_telegram_export(store, COMMUNITY, path)
    assert str(caught.value).endswith(
        "messages[9].reactions: expected a list; 0 files imported before this one are kept; "
        "fix the file and run again — re-importing is safe"
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM membership_events")).scalar() == 0


@storage
def test_missing_export(store: IngestStore, tmp_path: Path) -> None:
    with pytest.raises(ExportPathError, match=r"no result\.json in this folder"):
        import_telegram_export(store, COMMUNITY, tmp_path)
    with pytest.raises(ExportPathError, match="no such file or folder"):
        import_telegram_export(store, COMMUNITY, tmp_path / "result.json")


# --- dates out of range and duplicate ids, through the command line ---------------------------------------------

RANGE = "is out of range: imported times must lie between 1970-01-01 and 2099-12-31 (UTC)"
KEEP = "0 files imported before this one are kept; fix the file and run again — re-importing is safe"


def cli_config(path: Path, url: str) -> Path:
    path.write_text(
        f'[community]\nname = "{COMMUNITY}"\ntimezone = "Europe/Berlin"\n\n[storage]\nurl = {json.dumps(url)}\n',
        encoding="utf-8",
    )
    return path


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@storage
@pytest.mark.parametrize(
    ("times", "field", "raw"),
    [
        # Year 1 with a positive offset is the day before year 1 in UTC: Python cannot even hold it.
        ({"date": "0001-01-01T00:30:00+01:00"}, "date", "0001-01-01T00:30:00+01:00"),
        # Year 9999 in a positive-offset zone is representable, but a week later (or east of it) is not.
        ({"date": "9999-12-31T23:30:00+05:00"}, "date", "9999-12-31T23:30:00+05:00"),
        ({"date": "9999-12-31T23:30:00-05:00"}, "date", "9999-12-31T23:30:00-05:00"),
        ({"date": "1", "date_unixtime": -99_999_999_999_999}, "date_unixtime", -99_999_999_999_999),
        ({"date": "1", "date_unixtime": "99999999999999999999"}, "date_unixtime", "99999999999999999999"),
        ({"date": "1", "date_unixtime": "253402300800"}, "date_unixtime", "253402300800"),  # 10000-01-01
        ({"date": "1", "date_unixtime": 4_102_444_800}, "date_unixtime", 4_102_444_800),  # 2100-01-01
    ],
)
def test_dates_out_of_range_name_file_and_line_and_store_nothing(
    store: IngestStore,
    engine: Engine,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    times: dict[str, Any],
    field: str,
    raw: object,
) -> None:
    from bot.cli import main

    doc = export()
    del doc["messages"][4]["date_unixtime"]
    doc["messages"][4].update(times)
    path = write(tmp_path / "result.json", doc)
    config = cli_config(tmp_path / "c.toml", db_url)
    assert main(["import", "telegram-export", str(path), "--config", str(config)]) == 1
    captured = capsys.readouterr()
    line = [i for i, text_line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text_line == "  {"][4]
    assert captured.err == f"cohortbot: {path}:{line}: messages[4].{field}: {raw!r} {RANGE}; {KEEP}\n"
    assert captured.out == ""
    assert (count_rows(engine, "messages"), count_rows(engine, "membership_events")) == (0, 0)


@storage
def test_duplicate_ids_with_different_content_are_counted_and_the_first_is_kept(
    store: IngestStore, engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    doc = export()
    messages = doc["messages"]
    first = next(m for m in messages if m["id"] == 2)
    edited = {**first, "text": "hello everyone, edited to say more"}
    other = next(m for m in messages if m["id"] == 3)
    # Two copies of message 2 and one of message 3 differ from what was read first; one exact copy does not.
    messages += [edited, {**edited, "text": "and again"}, dict(first), {**other, "text": "changed"}]
    path = write(tmp_path / "result.json", doc)
    config = cli_config(tmp_path / "c.toml", db_url)
    assert main(["import", "telegram-export", str(path), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip("\n").endswith("; 3 duplicate message ids with different content (kept the first)")
    with engine.connect() as conn:
        length = conn.execute(text("SELECT length FROM messages WHERE platform_message_id = '2'")).scalar_one()
    assert length == len(first["text"])

    # Without conflicting copies the summary says nothing about them.
    clean = write(tmp_path / "clean.json", export())
    assert main(["import", "telegram-export", str(clean), "--config", str(config)]) == 0
    assert "different content" not in capsys.readouterr().out
