"""DiscordChatExporter imports: parsing real and hand-written exports, and storing them idempotently.

Real data comes from the slice of the Komodo export in ``tests/fixtures/komodo-discord-dce`` (read in place;
copied into ``tmp_path`` only when a test needs to change a file; its README says what it keeps). Expected counts
are computed independently with the ``csv`` module. Only ``test_whole_shared_tree`` reads the full export, from
``../shared/data/komodo-discord-dce`` beside the repository, and is skipped when that is not there.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.importers import CorruptExportError, ExportPathError, ParsedFile
from bot.importers.discord_export import DiscordExportReader, discover_files, parse_date
from bot.importers.parallel import ParserProcess
from bot.importers.progress import Progress
from bot.importers.runner import DiscordImport, ImportSummary, import_discord_export
from storage.engine import make_engine
from storage.errors import UnknownCommunityError
from storage.events import MemberJoined, MessageEvent, text_facts
from storage.ingest import IngestStore
from storage.migrate import upgrade
from tests.conftest import COMMUNITY

DATA = Path(__file__).resolve().parent / "fixtures" / "komodo-discord-dce"
FULL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "komodo-discord-dce"
BULK = DATA / "before-2019-Dec-05"
FIXTURES = Path(__file__).parent / "fixtures" / "imports"
SECURITY = BULK / "developer-lounge" / "dev-security"  # 5 files, 464 messages, multi-line contents
SECURITY_ID = "476644438056239114"  # from channels.json
KEEP = "fix the file and run again — re-importing is safe"

needs_full_data = pytest.mark.skipif(
    not FULL_DATA.is_dir(), reason=f"the full Komodo export is not beside the repository (looked in {FULL_DATA})"
)
storage = pytest.mark.storage


def records(paths: Iterable[Path]) -> list[list[str]]:
    """Every record of DCE CSV files, read with the csv module (independently of the importer)."""
    rows: list[list[str]] = []
    for path in paths:
        content = path.read_text(encoding="utf-8-sig")
        if not content.strip():
            continue
        delimiter = ";" if content.startswith("AuthorID;") else ","
        reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
        next(reader)
        rows.extend(row for row in reader if row)
    return rows


def csv_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.csv"))


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def message_count(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM messages"))


# --- dates -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("02-Jul-18 08:51 PM", datetime(2018, 7, 2, 20, 51, tzinfo=UTC)),
        ("02-Jul-18 12:05 AM", datetime(2018, 7, 2, 0, 5, tzinfo=UTC)),
        ("02-Jul-18 12:05 PM", datetime(2018, 7, 2, 12, 5, tzinfo=UTC)),
        ("7/2/2018 8:51 PM", datetime(2018, 7, 2, 20, 51, tzinfo=UTC)),
        ("12/31/2019 11:59 AM", datetime(2019, 12, 31, 11, 59, tzinfo=UTC)),
        ("2018-07-02T20:51:07.123+02:00", datetime(2018, 7, 2, 18, 51, 7, 123000, tzinfo=UTC)),
        ("2018-07-02T20:51:00Z", datetime(2018, 7, 2, 20, 51, tzinfo=UTC)),
        ("2018-07-02 20:51", datetime(2018, 7, 2, 20, 51, tzinfo=UTC)),
    ],
)
def test_supported_date_formats(value: str, expected: datetime) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2018.07.02 20:51", "unknown format"),
        ("02/07/2018 20:51", "unknown format"),  # en-GB: day-first and 24 h, ambiguous with en-US
        ("02.07.2018 20:51", "unknown format"),  # de-DE
        ("02-Jly-18 08:51 PM", "unknown month"),
        ("13/2/2018 8:51 PM", "month must be in 1..12"),
        ("02-Jul-18 13:51 PM", "not on a 12-hour clock"),
    ],
)
def test_other_date_formats_are_rejected(value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_date(value)


# --- parsing real CSV ------------------------------------------------------------------------------------------


def test_real_channel_parses_like_the_csv_module() -> None:
    files = discover_files([SECURITY])
    assert [f.name for f in files] == ["1.csv", "2.csv", "3.csv", "4.csv", "5.csv"]
    rows = records(files)
    reader = DiscordExportReader(COMMUNITY)
    events = [e for f in files for e in reader.parse(f).events]
    assert len(events) == len(rows) == 464
    assert all(isinstance(e, MessageEvent) for e in events)
    messages = [e for e in events if isinstance(e, MessageEvent)]
    assert {e.channel.channel_id for e in messages} == {SECURITY_ID}
    assert {e.channel.name for e in messages} == {"dev-security"}
    assert [e.author.user_id for e in messages] == [r[0] for r in rows]
    assert [e.author.display_name for e in messages] == [r[1] for r in rows]
    assert [e.length for e in messages] == [len(r[3]) for r in rows]
    multi_line = [(e, r) for e, r in zip(messages, rows, strict=True) if "\n" in r[3]]
    assert len(multi_line) == 36
    assert all(e.text is None for e in messages)
    assert len({e.message_id for e in messages}) == 464
    assert all(e.message_id.startswith("dce:") for e in messages)
    assert not any(e.is_reply for e in messages)


def test_reaction_totals_and_attachments_from_real_rows() -> None:
    path = BULK / "developer-lounge" / "dev-games" / "1.csv"
    rows = records([path])
    events = DiscordExportReader(COMMUNITY).parse(path).events
    assert rows[0][5] == "👍 (1)"
    totals = [e.imported_reactions for e in events if isinstance(e, MessageEvent)]
    assert totals[0] == 1
    assert sum(totals) == sum(int(n) for r in rows for n in _counts(r[5]))
    # A file with attachments: DCE joins attachment URLs with ",".
    with_files = next(f for f in csv_files(BULK) if any(r[4] for r in records([f])))
    parsed = [e for e in DiscordExportReader(COMMUNITY).parse(with_files).events if isinstance(e, MessageEvent)]
    assert [e.attachments for e in parsed] == [len(r[4].split(",")) if r[4] else 0 for r in records([with_files])]


def _counts(value: str) -> list[str]:
    return [item.rsplit(" (", 1)[1].rstrip(")") for item in value.split(",")] if value else []


def test_reactions_with_several_emoji_are_summed(tmp_path: Path) -> None:
    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    path.write_text(
        "AuthorID;Author;Date;Content;Attachments;Reactions;\n"
        '"1";"a#1";"02-Jul-18 08:51 PM";"hi";"";"👍 (2),Komodo (1),3040_kingpeepo (12)";\n',
        encoding="utf-8",
    )
    (event,) = DiscordExportReader(COMMUNITY).parse(path).events
    assert isinstance(event, MessageEvent)
    assert event.imported_reactions == 15
    assert event.channel.channel_id == "name:general"  # no channels.json above tmp_path


def test_identical_messages_in_one_minute_get_distinct_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "spam" / "1.csv"
    path.parent.mkdir()
    row = '"1";"a#1";"02-Jul-18 08:51 PM";"+1";"";"";\n'
    path.write_text("AuthorID;Author;Date;Content;Attachments;Reactions;\n" + row * 3, encoding="utf-8")
    first = [e.message_id for e in DiscordExportReader(COMMUNITY).parse(path).events if isinstance(e, MessageEvent)]
    again = [e.message_id for e in DiscordExportReader(COMMUNITY).parse(path).events if isinstance(e, MessageEvent)]
    assert len(set(first)) == 3
    assert first == again


def test_ordinals_continue_across_parts_even_when_a_part_is_read_alone() -> None:
    # #introductions has bursts of identical empty messages that straddle part boundaries (17.csv → 18.csv).
    folder = BULK / "lobby" / "introductions"
    reader = DiscordExportReader(COMMUNITY)
    whole = {f.name: [e.message_id for e in reader.parse(f).events] for f in discover_files([folder])}
    assert len({i for ids in whole.values() for i in ids}) == sum(len(ids) for ids in whole.values())
    alone = [e.message_id for e in DiscordExportReader(COMMUNITY).parse(folder / "18.csv").events]
    assert alone == whole["18.csv"]


def test_channel_from_dce_file_names_and_part_order(tmp_path: Path) -> None:
    header = "AuthorID,Author,Date,Content,Attachments,Reactions\n"
    base = "Cohort - Learning - help [900000000000000100]"
    for name, minute in ((f"{base} [part 2].csv", "52"), (f"{base}.csv", "51"), (f"{base} [part 10].csv", "53")):
        (tmp_path / name).write_text(header + f'"1","a#1","7/2/2018 8:{minute} PM","hi","",""\n', encoding="utf-8")
    files = discover_files([tmp_path])
    assert [f.name for f in files] == [f"{base}.csv", f"{base} [part 2].csv", f"{base} [part 10].csv"]
    reader = DiscordExportReader(COMMUNITY)
    events = [e for f in files for e in reader.parse(f).events]
    assert {(e.channel.channel_id, e.channel.name) for e in events if isinstance(e, MessageEvent)} == {
        ("900000000000000100", "help")
    }


def test_header_only_and_empty_files_are_fine(tmp_path: Path) -> None:
    (tmp_path / "0.csv").write_bytes(b"")
    shutil.copy(FIXTURES / "header_only.csv", tmp_path / "1.csv")
    (tmp_path / "2.csv").write_text("AuthorID,Author,Date,Content,Attachments,Reactions\n", encoding="utf-8")
    (tmp_path / "3.json").write_bytes(b"")
    reader = DiscordExportReader(COMMUNITY)
    parsed = [reader.parse(f) for f in discover_files([tmp_path])]
    assert [(p.empty, p.events) for p in parsed] == [(True, [])] * 4


# --- JSON ------------------------------------------------------------------------------------------------------


def test_json_export_uses_real_ids_replies_bots_and_joins() -> None:
    parsed = DiscordExportReader(COMMUNITY).parse(FIXTURES / "dce_channel.json")
    join, question, answer, bot, thanks = parsed.events
    assert isinstance(join, MemberJoined)
    assert join.member.user_id == "800000000000000001"
    assert isinstance(question, MessageEvent)
    assert question.message_id == "1210000000000000002"
    assert (question.has_code, question.has_link, question.attachments, question.imported_reactions) == (
        True,
        True,
        2,
        3,
    )
    assert question.occurred_at == datetime(2024, 3, 4, 9, 1, 30, 250000, tzinfo=UTC)
    assert question.channel.channel_id == "900000000000000100"
    assert question.channel.name == "help"
    assert isinstance(answer, MessageEvent)
    assert answer.reply_to_message_id == "1210000000000000002"
    assert answer.reply_to_user_id == "800000000000000001"
    assert isinstance(bot, MessageEvent)
    assert bot.author.is_bot
    assert isinstance(thanks, MessageEvent)
    assert thanks.is_reply and thanks.reply_to_user_id is None  # the replied-to message is not in the export
    assert parsed.messages == 4
    assert dict(parsed.skipped) == {"Discord system messages (pins, thread creation, calls ...)": 1}


# --- corrupt files ---------------------------------------------------------------------------------------------

CORRUPT = [
    ("bad_field_count.csv", 5, "expected 7 fields (AuthorID;Author;Date;Content;Attachments;Reactions;), found 6"),
    (
        "bad_stray_quote.csv",
        3,
        "malformed quoting: ';' expected after a closing quote (an unbalanced quote, or a quote inside a field "
        "that is not doubled)",
    ),
    (
        "bad_unclosed_quote.csv",
        3,
        "unbalanced quote: a quoted field is not closed (the record runs on to the end of the file)",
    ),
    (
        "bad_date_format.csv",
        3,
        "Date '2018.07.02 20:52' has an unknown format: supported are DiscordChatExporter's classic default like "
        "'02-Jul-18 08:51 PM', the en-US locale like '7/2/2018 8:51 PM' and ISO 8601 like "
        "'2018-07-02T20:51:00+00:00'; re-export with --locale en-US --utc",
    ),
    ("bad_missing_author.csv", 3, "AuthorID: expected a Discord user id (digits), got ''"),
    ("bad_syntax.json", 67, "not valid JSON: Expecting ',' delimiter (column 7)"),
    (
        "bad_missing_timestamp.json",
        107,
        "messages[2].timestamp: missing (expected an ISO 8601 time like '2020-09-27T17:18:34.454+00:00')",
    ),
]


@pytest.mark.parametrize(("name", "line", "message"), CORRUPT)
def test_corrupt_file_error_names_file_and_line(name: str, line: int, message: str) -> None:
    path = FIXTURES / name
    with pytest.raises(CorruptExportError) as caught:
        DiscordExportReader(COMMUNITY).parse(path)
    assert str(caught.value) == f"{path}:{line}: {message}"
    assert (caught.value.file, caught.value.line) == (path, line)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "1.csv"
    path.write_bytes(
        b'AuthorID;Author;Date;Content;Attachments;Reactions;\n"1";"a";"02-Jul-18 08:51 PM";"\xff";"";"";\n'
    )
    with pytest.raises(CorruptExportError) as caught:
        DiscordExportReader(COMMUNITY).parse(path)
    assert str(caught.value) == f"{path}:2: not UTF-8 text (byte 82 cannot be decoded)"


def test_not_a_dce_csv(tmp_path: Path) -> None:
    path = tmp_path / "1.csv"
    path.write_text("id,user,when\n1,2,3\n", encoding="utf-8")
    with pytest.raises(CorruptExportError, match=r"1\.csv:1: not a DiscordChatExporter CSV"):
        DiscordExportReader(COMMUNITY).parse(path)


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(ExportPathError, match="no such file or folder"):
        discover_files([tmp_path / "missing"])
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(ExportPathError, match=r"no DiscordChatExporter \.csv or \.json files"):
        discover_files([tmp_path])
    with pytest.raises(ExportPathError, match=r"expected a \.csv or \.json file"):
        discover_files([tmp_path / "notes.txt"])


# --- progress and summary --------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_redraws_in_place_and_throttles() -> None:
    out = io.StringIO()
    clock = FakeClock()
    bar = Progress(out, enabled=True, interval=0.5, width=10, clock=clock)
    bar.start(4)
    clock.now = 0.6
    bar.update(1, 100)
    clock.now = 0.7
    bar.update(2, 200)  # too soon: not drawn
    clock.now = 1.2
    bar.update(3, 300)
    bar.update(4, 400)  # too soon, but finish draws the final state
    bar.finish()
    frames = out.getvalue().split("\r")[1:]
    assert frames == [
        "[..........] 0/4 files, 0 messages",
        "[##........] 1/4 files, 100 messages",
        "[#######...] 3/4 files, 300 messages",
        "[##########] 4/4 files, 400 messages\n",
    ]


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()  # isatty() is False
    bar = Progress(out)
    bar.start(2)
    bar.update(2, 10)
    bar.finish()
    assert out.getvalue() == ""


def test_summary_line() -> None:
    summary = ImportSummary(
        files=3,
        empty_files=1,
        messages_read=10,
        messages=7,
        members=4,
        duplicates=3,
        joins=1,
        leaves=0,
        skipped=(("channel posts", 2), ("other service messages", 1)),
    )
    assert summary.line() == (
        "imported 3 files (1 empty): 10 messages read, 7 new, 3 duplicates skipped (already stored); 4 members; "
        "1 join, 0 leaves; skipped: 2 × channel posts, 1 × other service messages"
    )
    assert summary.skipped_total == 3
    assert ImportSummary(files=1).line().endswith("skipped: nothing")


# --- storing ---------------------------------------------------------------------------------------------------


# Parsing in a second process (what big imports do) must store and report exactly what parsing in this one does.
both_ways = pytest.mark.parametrize("parallel", [False, True], ids=["one process", "parser process"])


@storage
@both_ways
def test_import_folder_stores_every_message_once(store: IngestStore, engine: Engine, parallel: bool) -> None:
    rows = records(csv_files(SECURITY))
    summary = import_discord_export(store, COMMUNITY, [SECURITY], parallel=parallel)
    assert (summary.files, summary.messages_read, summary.messages, summary.duplicates) == (5, 464, 464, 0)
    assert summary.members == len({r[0] for r in rows}) == 42
    assert message_count(engine) == 464
    assert scalar(engine, "SELECT count(DISTINCT member_id) FROM messages") == 42
    with engine.connect() as conn:
        channels = conn.execute(text("SELECT platform, platform_channel_id, name FROM channels")).all()
        names = dict(conn.execute(text("SELECT platform_user_id, display_name FROM members")).all())
        stored = conn.execute(text("SELECT length, is_reply, text FROM messages ORDER BY created_at, id")).all()
    assert [tuple(c) for c in channels] == [("discord", SECURITY_ID, "dev-security")]
    assert names == {r[0]: r[1] for r in rows}
    assert sorted(s.length for s in stored) == sorted(len(r[3]) for r in rows)
    assert not any(s.is_reply for s in stored)
    assert all(s.text is None for s in stored)

    again = import_discord_export(store, COMMUNITY, [SECURITY], parallel=parallel)
    assert (again.messages, again.duplicates) == (0, 464)
    assert message_count(engine) == 464


@storage
@both_ways
def test_incremental_day_exports_add_only_new_messages(store: IngestStore, engine: Engine, parallel: bool) -> None:
    import_discord_export(store, COMMUNITY, [SECURITY], parallel=parallel)
    days = sorted((DATA / "after-2019-Dec-05").glob("*/developer-lounge/dev-security"))
    new_rows = records(f for d in days for f in d.glob("*.csv"))
    assert len(new_rows) == 3
    first_day = import_discord_export(store, COMMUNITY, [days[0]], parallel=parallel)
    assert (first_day.messages, first_day.duplicates) == (1, 0)
    every_day = import_discord_export(store, COMMUNITY, days, parallel=parallel)
    assert (every_day.files, every_day.empty_files) == (7, 4)
    assert (every_day.messages, every_day.duplicates) == (2, 1)
    assert message_count(engine) == 464 + 3
    assert scalar(engine, "SELECT count(*) FROM channels") == 1  # the day folders map to the same channel id


@storage
def test_a_part_imported_again_on_its_own_adds_nothing(store: IngestStore, engine: Engine) -> None:
    folder = BULK / "lobby" / "introductions"
    whole = import_discord_export(store, COMMUNITY, [folder])
    assert whole.messages == len(records(csv_files(folder)))
    part = import_discord_export(store, COMMUNITY, [folder / "18.csv"])
    assert (part.messages, part.duplicates) == (0, len(records([folder / "18.csv"])))
    assert message_count(engine) == whole.messages


@storage
def test_empty_files_are_counted(store: IngestStore, engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "dev-security"
    folder.mkdir()
    shutil.copy(SECURITY / "1.csv", folder / "1.csv")
    (folder / "2.csv").write_bytes(b"")
    shutil.copy(FIXTURES / "header_only.csv", folder / "3.csv")
    summary = import_discord_export(store, COMMUNITY, [folder])
    assert (summary.files, summary.empty_files, summary.messages) == (3, 2, len(records([SECURITY / "1.csv"])))
    assert "(2 empty)" in summary.line()


@storage
@both_ways
@pytest.mark.parametrize(("name", "line", "message"), CORRUPT)
def test_corrupt_file_stores_nothing_of_itself_and_keeps_earlier_files(
    store: IngestStore, engine: Engine, tmp_path: Path, name: str, line: int, message: str, parallel: bool
) -> None:
    folder = tmp_path / "export" / "general"
    folder.mkdir(parents=True)
    shutil.copy(SECURITY / "1.csv", folder / "1.csv")
    shutil.copy(SECURITY / "2.csv", folder / "2.csv")
    bad = folder / ("3" + Path(name).suffix)
    shutil.copy(FIXTURES / name, bad)
    later = folder / "4.csv"
    shutil.copy(SECURITY / "3.csv", later)
    with pytest.raises(CorruptExportError) as caught:
        import_discord_export(store, COMMUNITY, [tmp_path / "export"], parallel=parallel)
    assert str(caught.value) == f"{bad}:{line}: {message}; 2 files imported before this one are kept; {KEEP}"
    kept = caught.value.kept
    assert isinstance(kept, ImportSummary)
    good = len(records([folder / "1.csv", folder / "2.csv"]))
    assert (kept.files, kept.messages) == (2, good)
    # Nothing from the corrupt file (not even its good first records) and nothing after it.
    assert message_count(engine) == good

    # Fixing the file and running again imports the rest; what was kept is not stored twice.
    bad.unlink()
    rerun = import_discord_export(store, COMMUNITY, [tmp_path / "export"], parallel=parallel)
    assert (rerun.messages, rerun.duplicates) == (len(records([later])), good)


@storage
def test_json_export_is_stored_with_replies_bots_and_joins(store: IngestStore, engine: Engine) -> None:
    summary = import_discord_export(store, COMMUNITY, [FIXTURES / "dce_channel.json"])
    assert (summary.messages, summary.joins, summary.members) == (4, 1, 3)
    assert summary.skipped == (("Discord system messages (pins, thread creation, calls ...)", 1),)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.platform_message_id, a.platform_user_id, r.platform_user_id AS reply_to, m.is_reply, "
                "m.attachments FROM messages m JOIN members a ON a.id = m.member_id "
                "LEFT JOIN members r ON r.id = m.reply_to_member_id ORDER BY m.platform_message_id"
            )
        ).all()
        bots = conn.execute(text("SELECT platform_user_id FROM members WHERE is_bot")).scalars().all()
    assert [tuple(r) for r in rows] == [
        ("1210000000000000002", "800000000000000001", None, False, 2),
        ("1210000000000000003", "800000000000000002", "800000000000000001", True, 0),
        ("1210000000000000005", "800000000000000099", None, False, 0),
        ("1210000000000000006", "800000000000000001", None, True, 0),
    ]
    assert bots == ["800000000000000099"]
    assert scalar(engine, "SELECT count(*) FROM membership_events WHERE kind = 'join'") == 1


@storage
def test_text_is_stored_only_when_asked(engine: Engine) -> None:
    with_text = IngestStore(engine, store_text=True)
    with_text.register_community(COMMUNITY, "Europe/Berlin")
    path = SECURITY / "1.csv"
    import_discord_export(with_text, COMMUNITY, [path], store_text=True)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT text FROM messages")).scalars().all()
    assert sorted(stored) == sorted(r[3] for r in records([path]))


@storage
def test_wiring_mistakes_are_refused(store: IngestStore) -> None:
    with pytest.raises(UnknownCommunityError):
        import_discord_export(store, "nobody", [FIXTURES / "dce_channel.json"])
    with pytest.raises(ValueError, match="store_text=True needs"):
        import_discord_export(store, COMMUNITY, [FIXTURES / "dce_channel.json"], store_text=True)


@storage
@both_ways
def test_a_prepared_import_reports_errors_in_the_usual_order(
    store: IngestStore, engine: Engine, tmp_path: Path, parallel: bool
) -> None:
    # The CLI prepares the import (and starts parsing) before it opens the database: a bad path is still
    # reported after the community check, and a prepared import that never runs leaves nothing behind.
    with (
        DiscordImport("nobody", [tmp_path / "missing"], parallel=parallel) as job,
        pytest.raises(UnknownCommunityError),
    ):
        job.run(store)
    with (
        DiscordImport(COMMUNITY, [tmp_path / "missing"], parallel=parallel) as job,
        pytest.raises(ExportPathError, match="no such file or folder"),
    ):
        job.run(store)
    with DiscordImport(COMMUNITY, [SECURITY], parallel=parallel):
        pass
    assert message_count(engine) == 0
    with DiscordImport(COMMUNITY, [SECURITY], parallel=parallel) as job:
        assert job.run(store).messages == 464


# --- the whole shared tree -------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_full_data
def test_whole_shared_tree(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/komodo.db")
    upgrade(engine)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "UTC")
    summary = import_discord_export(store, COMMUNITY, [FULL_DATA])
    # The totals the data set's README states.
    assert (summary.files, summary.messages_read, summary.messages, summary.members) == (1419, 129_986, 129_986, 2898)
    assert message_count(engine) == 129_986
    assert scalar(engine, "SELECT count(DISTINCT member_id) FROM messages") == 2898
    assert scalar(engine, "SELECT count(*) FROM channels WHERE platform_channel_id LIKE 'name:%'") == 0
    again = import_discord_export(store, COMMUNITY, [FULL_DATA])
    assert (again.messages, again.duplicates) == (0, 129_986)
    assert message_count(engine) == 129_986
    engine.dispose()


# --- dates out of range, fields over the size limit, duplicate ids ----------------------------------------------

HEADER = "AuthorID;Author;Date;Content;Attachments;Reactions;\n"
RANGE = "is out of range: imported times must lie between 1970-01-01 and 2099-12-31 (UTC)"


def csv_row(date: str, content: str = "hi") -> str:
    return f'"1";"a#1";"{date}";"{content}";"";"";\n'


@pytest.mark.parametrize(
    "date",
    [
        "0001-01-01T00:30:00+01:00",  # year 1 with a positive offset: before year 1 in UTC
        "9999-12-31T23:30:00-01:00",  # year 9999 west of UTC: after year 9999 in UTC
        "9999-12-31T23:30:00+01:00",  # representable, but no week or local day after it is
        "1/1/0001 12:30 AM",
        "12/31/9999 11:59 PM",
        "1/1/1969 8:51 PM",
    ],
)
def test_csv_dates_out_of_range_name_file_and_line(tmp_path: Path, date: str) -> None:
    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    path.write_text(HEADER + csv_row("02-Jul-18 08:51 PM") + csv_row(date), encoding="utf-8")
    with pytest.raises(CorruptExportError) as caught:
        DiscordExportReader(COMMUNITY).parse(path)
    assert str(caught.value) == f"{path}:3: Date: {date!r} {RANGE}"


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "2100-01-01T00:00"])
def test_json_timestamps_out_of_range_name_file_and_line(tmp_path: Path, timestamp: str) -> None:
    doc = json.loads((FIXTURES / "dce_channel.json").read_text(encoding="utf-8"))
    doc["messages"][2]["timestamp"] = timestamp
    path = tmp_path / "help.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    starts = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line == "  {"]
    with pytest.raises(CorruptExportError) as caught:
        DiscordExportReader(COMMUNITY).parse(path)
    assert str(caught.value) == f"{path}:{starts[2]}: messages[2].timestamp: {timestamp!r} {RANGE}"


@storage
def test_out_of_range_date_through_the_cli_is_one_line_and_stores_nothing(
    store: IngestStore, engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    path.write_text(HEADER + csv_row("02-Jul-18 08:51 PM") + csv_row("0001-01-01T00:30:00+01:00"), encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text(f'[community]\nname = "{COMMUNITY}"\n[storage]\nurl = {json.dumps(db_url)}\n', encoding="utf-8")
    assert main(["import", "discord-export", str(path), "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cohortbot: {path}:3: Date: '0001-01-01T00:30:00+01:00' {RANGE}; 0 files")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert message_count(engine) == 0


def test_field_over_the_size_limit_is_reported_as_such(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    path.write_text(HEADER + csv_row("02-Jul-18 08:51 PM") + csv_row("02-Jul-18 08:52 PM", "x" * (limit + 1)))
    with pytest.raises(CorruptExportError) as caught:
        DiscordExportReader(COMMUNITY).parse(path)
    assert str(caught.value) == (
        f"{path}:3: field longer than {limit:,} characters (the most one field may hold; a Discord message is at "
        "most 4,000 characters, so this is not a plain export)"
    )


def test_unclosed_quote_running_past_the_size_limit_is_still_an_unbalanced_quote(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    unclosed = '"1";"a#1";"02-Jul-18 08:52 PM";"an unclosed quote;"";"";\n'
    # Records without quotes after it (DCE quotes every field, other writers do not): nothing closes the field.
    filler = "".join(f"2;b#2;02-Jul-18 08:53 PM;{'y' * 99};;;\n" for _ in range(limit // 100 + 10))
    path.write_text(HEADER + csv_row("02-Jul-18 08:51 PM") + unclosed + filler, encoding="utf-8")
    with pytest.raises(CorruptExportError) as caught:
        DiscordExportReader(COMMUNITY).parse(path)
    assert str(caught.value) == (
        f"{path}:3: unbalanced quote: a quoted field is not closed (the record runs on to the end of the file)"
    )


@storage
@both_ways
def test_duplicate_json_ids_with_different_content_are_counted(
    store: IngestStore, engine: Engine, tmp_path: Path, parallel: bool
) -> None:
    doc = json.loads((FIXTURES / "dce_channel.json").read_text(encoding="utf-8"))
    (tmp_path / "a.json").write_text(json.dumps(doc), encoding="utf-8")
    # A later export of the channel: one message edited since, the others unchanged.
    question = doc["messages"][1]
    original_length = len(question["content"])
    question["content"] += " (edited)"
    (tmp_path / "b.json").write_text(json.dumps(doc), encoding="utf-8")
    summary = import_discord_export(store, COMMUNITY, [tmp_path], parallel=parallel)
    assert summary.conflicts == 1
    assert summary.line().endswith("; 1 duplicate message id with different content (kept the first)")
    assert scalar(engine, f"SELECT length FROM messages WHERE platform_message_id = '{question['id']}'") == (
        original_length
    )


# --- the parser process ----------------------------------------------------------------------------------------


def _fail_on_third(path: Path) -> ParsedFile:
    if path.name == "3.csv":
        raise PermissionError(f"{path}: permission denied")
    return DiscordExportReader(COMMUNITY).parse(path)


def test_parser_process_hands_over_files_in_order_and_raises_what_parsing_raised() -> None:
    files = discover_files([SECURITY])
    reader = DiscordExportReader(COMMUNITY)
    here = [reader.parse(f) for f in files]
    with ParserProcess(files, DiscordExportReader(COMMUNITY).parse) as parsed:
        there = list(parsed)
    assert [p.path for p in there] == files
    assert [p.events for p in there] == [p.events for p in here]
    assert [(p.messages, p.members, p.skipped, p.empty) for p in there] == [
        (p.messages, p.members, p.skipped, p.empty) for p in here
    ]

    got: list[Path] = []
    with pytest.raises(PermissionError, match=r"3\.csv: permission denied"), ParserProcess(files, _fail_on_third) as p:
        got.extend(parsed.path for parsed in p)
    assert got == files[:2]


def test_parser_process_stops_when_the_importer_stops_listening() -> None:
    files = discover_files([BULK])
    with ParserProcess(files, DiscordExportReader(COMMUNITY).parse) as parsed:
        first = next(iter(parsed))
        process = parsed._process
    assert first.path == files[0]
    assert process._closed  # type: ignore[attr-defined]  # joined and released, not left running


# --- what the parser's shortcuts must not change -----------------------------------------------------------------


def test_every_date_of_a_file_reads_as_parse_date_reads_it_alone(tmp_path: Path) -> None:
    # Days and clock times recur in new pairings (the parser reuses what it parsed of each), across formats.
    dates = [
        "02-Jul-18 08:51 PM",
        "02-Jul-18 12:00 AM",
        "03-Jul-18 08:51 PM",
        "03-Jul-18 12:00 AM",
        "02-Jul-18 12:00 PM",
        "7/3/2018 8:51 PM",
        "1/12/2018 12:51 PM",  # as long as a classic date, with the space in the same place
        "12-Jan-18 12:51 PM",
        "2018-07-03T20:51:00+02:00",
        "03-Jul-18 12:00 PM",
    ]
    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    path.write_text(HEADER + "".join(csv_row(d, f"m{i}") for i, d in enumerate(dates)), encoding="utf-8")
    events = DiscordExportReader(COMMUNITY).parse(path).events
    assert [e.occurred_at for e in events] == [parse_date(d) for d in dates]
    alone = [DiscordExportReader(COMMUNITY).parse(_one_row_file(tmp_path, i, d)).events[0] for i, d in enumerate(dates)]
    assert [e.occurred_at for e in alone] == [e.occurred_at for e in events]


def _one_row_file(tmp_path: Path, i: int, date: str) -> Path:
    path = tmp_path / f"alone{i}" / "general" / "1.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + csv_row(date, f"m{i}"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content",
    [
        "",
        "plain words",
        "see https://example.com",
        "HTTP://EXAMPLE.COM/x",
        "www.example.org",
        "WWW.example.org is it",
        "a.b",
        "ratio 3:2",
        "`code`",
        "```\nblock\n```",
        "a ` lone backtick",
        "ſee httpſ://x",  # a long s: not a link, whatever case folding says
        "mailto:someone",
    ],
)
def test_message_metadata_is_what_text_facts_says(tmp_path: Path, content: str) -> None:
    path = tmp_path / "general" / "1.csv"
    path.parent.mkdir()
    path.write_text(HEADER + csv_row("02-Jul-18 08:51 PM", content.replace('"', '""')), encoding="utf-8")
    (event,) = DiscordExportReader(COMMUNITY).parse(path).events
    assert isinstance(event, MessageEvent)
    facts = text_facts(content)
    assert (event.length, event.has_code, event.has_link) == (facts.length, facts.has_code, facts.has_link)
