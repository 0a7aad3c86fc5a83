"""``cohortbot console``, driven through its input stream against a real, migrated SQLite database."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.config import Settings, parse_settings
from bot.console import ConsoleError, console_settings, run_console
from bot.demo import DATABASE_NAME, START, demo_settings, run_demo
from storage.catalog import CourseRecord, sync_courses
from storage.digests import claim_digest
from storage.engine import make_engine
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource
from storage.ingest import IngestStore
from storage.migrate import upgrade
from tests.helpers.fake_actions import FakeClock

T0 = datetime(2024, 3, 4, 11, 0, tzinfo=UTC)  # Monday 4 March 2024, 12:00 in Berlin
PNG = b"\x89PNG\r\n\x1a\n"


def config_data(db: Path, **nudges: object) -> dict[str, object]:
    return {
        "community": {"name": "PyCraft", "timezone": "Europe/Berlin"},
        "storage": {"url": f"sqlite:///{db.as_posix()}"},
        "nudges": {"enabled": True, "holdout_share": 0, **nudges},
        "courses": [
            {"id": "py-async", "title": "Async Python", "description": "Four weeks of asyncio.", "price_stars": 500},
            {"id": "py-web", "title": "Web with Python", "price": 49, "currency": "EUR"},
        ],
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    db = tmp_path / "cohortbot.db"
    engine = make_engine(f"sqlite:///{db.as_posix()}")
    upgrade(engine)
    engine.dispose()
    return parse_settings(config_data(db))


@pytest.fixture
def db(settings: Settings) -> Engine:
    return make_engine(settings.storage.url)


def session(
    settings: Settings, lines: Sequence[str], *, at: datetime | None = T0, admins: Sequence[str] = ()
) -> tuple[int, str]:
    """Type ``lines`` into a console session at ``at`` (None: the console's own clock); returns its exit and output."""
    out = io.StringIO()
    code = run_console(
        settings,
        stdin=io.StringIO("".join(f"{line}\n" for line in lines)),
        stdout=out,
        admins=admins,
        clock=FakeClock(at) if at else None,
    )
    return code, out.getvalue()


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def messages_of(engine: Engine, user: str) -> list[tuple[object, ...]]:
    """(length, has a link, stored text) of a console member's messages, oldest first."""
    found = rows(
        engine,
        "SELECT m.length, m.has_link, m.text FROM messages m JOIN members u ON u.id = m.member_id "
        "WHERE u.platform = 'console' AND u.platform_user_id = :user ORDER BY m.id",
        user=user,
    )
    return [(length, bool(link), body) for length, link, body in found]


def answer_after(output: str, typed: str) -> str:
    """What the console printed after the echoed input line ``typed`` and before the next input line."""
    block = output.split(f"> {typed}\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if "> " in line and not line.startswith((" ", "bot ›", "·", "──")):
            break
        lines.append(line)
    return "\n".join(lines)


def written_files(output: str) -> list[Path]:
    return [Path(line.split("file: ", 1)[1]) for line in output.splitlines() if "file: " in line]


# --- messages and member commands --------------------------------------------------------------------------------


def test_messages_are_stored_as_metadata_and_stats_count_them(settings: Settings, db: Engine) -> None:
    code, out = session(
        settings,
        ["@alice hello everyone", "and a link https://docs.python.org", "/stats", "@bob hi", "/stats"],
    )
    assert code == 0
    assert messages_of(db, "alice") == [(14, False, None), (34, True, None)]  # lengths and facts, never the text
    assert scalar(db, "SELECT display_name FROM members WHERE platform_user_id = 'alice'") == "alice"
    alice = answer_after(out, "/stats")
    assert alice.startswith("bot › Your activity in PyCraft  (only you see this)")
    assert "Last 7 days: 2 messages on 1 active day" in alice
    assert "Rank: #1 of 1 active member (messages, 30 days)" in alice
    bob = out.split("bob> /stats\n", 1)[1]  # /stats after @bob speaks runs as bob, the current member
    assert "Last 7 days: 1 message on 1 active day" in bob
    assert "stored: @alice in #general, 14 characters (metadata only, the text is not kept)" in out


def test_text_is_kept_only_when_the_owner_turned_it_on(tmp_path: Path, settings: Settings, db: Engine) -> None:
    data = config_data(Path(settings.storage.url.removeprefix("sqlite:///")))
    data["storage"] = {"url": settings.storage.url, "store_text": True}
    session(parse_settings(data), ["@alice hello everyone"])
    assert messages_of(db, "alice") == [(14, False, "hello everyone")]


def test_report_is_refused_to_members_and_answered_to_owner_and_admins_with_a_chart(settings: Settings) -> None:
    code, out = session(
        settings, ["@alice hi", "/report", "@owner /report", "@carol /revenue", ":who"], admins=["carol"]
    )
    assert code == 0
    assert (
        answer_after(out, "/report") == "bot › Sorry, /report is only for the community's admins.  (only you see this)"
    )
    report = answer_after(out, "@owner /report")
    assert "PyCraft: report as of Mon 4 Mar 2024" in report
    charts = written_files(report)
    assert len(charts) == 1 and charts[0].read_bytes().startswith(PNG)
    assert charts[0].parent == Path(settings.storage.url.removeprefix("sqlite:///")).parent / "console-files"
    assert "only for the community's admins" not in answer_after(out, "@carol /revenue")
    assert "you are @carol (admin); admins: @owner, @carol" in out


def test_mydata_writes_the_export_next_to_the_database(settings: Settings) -> None:
    _, out = session(settings, ["@alice hello", "/mydata"])
    (export,) = written_files(answer_after(out, "/mydata"))
    document = json.loads(export.read_text(encoding="utf-8"))
    assert "alice" in json.dumps(document)
    assert export.name == "cohortbot-mydata-console-alice.json"


# --- simulated payments ------------------------------------------------------------------------------------------


def test_buy_and_pay_records_a_simulated_purchase_and_an_admin_can_refund_it(settings: Settings, db: Engine) -> None:
    code, out = session(
        settings,
        [
            "@alice /courses",
            "1",
            ":pay",
            ":pay",
            "/buy py-async",
            "@owner /refund @alice py-async",
            "1",
            "@alice /courses",
        ],
    )
    assert code == 0
    assert "[1] Buy Async Python: /buy py-async" in answer_after(out, "@alice /courses")
    invoice = answer_after(out, "1")
    assert "Invoice for Async Python: 500 Stars" in invoice
    assert "SIMULATED PAYMENT — no money moves" in invoice
    receipt = answer_after(out, ":pay")
    assert "Thank you! Your purchase of Async Python is recorded." in receipt
    assert "(simulated) access to Async Python given" in receipt
    assert "Simulated payment of 500 Stars: no money moved. Reference: console-sim-" in receipt
    purchases = rows(db, "SELECT platform, source, amount, currency, charge_id FROM purchases")
    assert len(purchases) == 1
    platform, source, amount, currency, charge_id = purchases[0]
    assert (platform, source, amount, currency) == ("console", "simulated", 500, "XTR")
    assert f"Reference: {charge_id}" in receipt
    assert "@alice has no open invoice" in out.split(":pay\n")[2]  # paying twice charges nothing
    assert "You already own Async Python. Nothing to pay." in answer_after(out, "/buy py-async")
    question = answer_after(out, "@owner /refund @alice py-async")
    assert "Refund this payment?" in question and "[1] Refund (cannot be undone)" in question
    refund = answer_after(out.split("> @owner /refund @alice py-async\n", 1)[1], "1")  # the owner confirms
    assert "Refunded the purchase of Async Python by alice (id alice)." in refund
    assert "(simulated) access to Async Python removed" in refund
    assert "simulated payment: no money moved" in refund
    assert scalar(db, "SELECT count(*) FROM refunds") == 1
    assert "Buy Async Python" in out.rsplit("> @alice /courses\n", 1)[1]  # for sale to her again


def test_simulated_payments_are_refused_on_a_live_communitys_database(tmp_path: Path, db: Engine) -> None:
    data = config_data(tmp_path / "cohortbot.db")
    data["discord"] = {"enabled": True, "guild_ids": [42]}
    code, out = session(parse_settings(data), ["@alice /buy py-async", ":pay"])
    assert code == 0
    assert "Simulated payments are off here" in answer_after(out, ":pay")
    assert scalar(db, "SELECT count(*) FROM purchases") == 0


def test_an_admin_can_grant_to_a_member_who_has_not_spoken_yet(settings: Settings, db: Engine) -> None:
    code, out = session(settings, ["@owner /grant @carol py-async"])
    assert code == 0
    assert "(simulated) access to Async Python given" in answer_after(out, "@owner /grant @carol py-async")
    assert rows(db, "SELECT m.platform_user_id, p.source FROM purchases p JOIN members m ON m.id = p.member_id") == [
        ("carol", "grant")
    ]


def test_an_invoice_left_unpaid_records_nothing(settings: Settings, db: Engine) -> None:
    _, out = session(settings, ["@bob /buy py-web", "@alice :pay"])
    assert "Invoice for Web with Python: 49.00 EUR" in out
    assert "@alice has no open invoice" in out  # bob's invoice is bob's
    assert scalar(db, "SELECT count(*) FROM purchases") == 0


# --- reactions, joins and leaves ---------------------------------------------------------------------------------


def test_reactions_joins_and_leaves_are_stored(settings: Settings, db: Engine) -> None:
    _, out = session(settings, [":react 👍", "@alice look at this", "@bob :react 🎉", ":join carol", ":leave dave"])
    assert "Nothing to react to yet" in answer_after(out, ":react 👍")
    assert rows(
        db,
        "SELECT r.emoji, giver.platform_user_id, author.platform_user_id FROM reactions r "
        "JOIN members giver ON giver.id = r.member_id JOIN members author ON author.id = r.target_member_id",
    ) == [("🎉", "bob", "alice")]
    assert rows(
        db,
        "SELECT u.platform_user_id, e.kind FROM membership_events e JOIN members u ON u.id = e.member_id ORDER BY e.id",
    ) == [("carol", "join"), ("dave", "leave")]


# --- digest and nudges -------------------------------------------------------------------------------------------


def test_digest_runs_the_real_job_and_shows_what_the_owner_receives(settings: Settings, db: Engine) -> None:
    session(settings, ["@alice hello", "@bob hi alice", "@alice /buy py-async", ":pay"])
    # A week later (Tuesday 12 March) the digest of 4-10 March is due.
    code, out = session(settings, [":digest", ":digest"], at=T0 + timedelta(days=8))
    assert code == 0
    first, second = out.split("> :digest\n")[1:]
    assert "── digest for the owner ──" in first
    assert "PyCraft: week 2024-W10" in first
    assert "Messages: 2" in first
    assert "· digest job: ok: digest 2024-W10" in first
    assert any(f.read_bytes().startswith(PNG) for f in written_files(first))
    assert scalar(db, "SELECT count(*) FROM digests") == 1
    assert "already claimed" in second  # the week is sent once; the console shows it again instead
    assert "── digest for the owner (already sent) ──" in second
    # Due Monday 09:00, sent on Tuesday: late, and it says so.
    assert (
        "· each week's digest is sent once; the digest of 2024-W10, sent Tue 12 Mar 2024 12:00 (Europe/Berlin), late"
        in (second)
    )
    # Shown again verbatim: the text the owner received (its chart was saved once, when it was sent).
    sent = delivered_text(first, "── digest for the owner ──")
    assert sent.strip() and delivered_text(second, "── digest for the owner (already sent) ──") == sent


def delivered_text(output: str, header: str) -> str:
    """The bot's message printed under ``header``, without the lines naming saved files (charts)."""
    lines = []
    for line in output.split(header + "\n", 1)[1].split("\n"):
        if line and not line.startswith(("bot › ", "      ")):
            break
        if "file: " not in line:
            lines.append(line)
    return "\n".join(lines).strip()


def test_digest_sent_before_a_restart_is_shown_again_as_sent_not_recomputed(settings: Settings, db: Engine) -> None:
    session(settings, ["@alice hello", "@bob hi alice"])
    _, out = session(settings, [":digest"], at=T0 + timedelta(days=8))
    sent = delivered_text(out, "── digest for the owner ──")
    assert "Messages: 2" in sent
    # More activity in that week arrives after it was sent (e.g. an import): a recomputation would count it.
    session(settings, ["@carol hello", "@dave hello", "@carol anyone?"], at=T0 + timedelta(days=1))
    # A new console session on the same database, a day later.
    _, later = session(settings, [":digest"], at=T0 + timedelta(days=9))
    assert "already claimed" in later
    assert "the digest of 2024-W10, sent Tue 12 Mar 2024 12:00 (Europe/Berlin), late, as the owner received it" in later
    shown = delivered_text(later, "── digest for the owner (already sent) ──")
    assert shown == sent
    assert "Messages: 2 " in shown and "Messages: 5" not in later


def test_digest_says_when_none_has_been_sent_yet(settings: Settings, db: Engine) -> None:
    session(settings, ["@alice hello"])
    # Another run claimed the week a minute ago and has not finished sending it.
    community_id = scalar(db, "SELECT id FROM communities")
    assert isinstance(community_id, int)
    claimed_at = T0 + timedelta(days=8) - timedelta(minutes=1)
    assert claim_digest(db, community_id, "2024-W10", now=claimed_at, late=False, claimed_by="vps:42")
    _, out = session(settings, [":digest"], at=T0 + timedelta(days=8))
    assert "already claimed" in out
    assert "no digest has been sent yet: the digest of 2024-W10 is claimed by a run that is still sending it" in out
    assert "── digest for the owner" not in out


def test_digest_shows_the_last_one_sent_while_the_due_week_is_still_being_sent(settings: Settings, db: Engine) -> None:
    session(settings, ["@alice hello"])
    _, out = session(settings, [":digest"], at=T0 + timedelta(days=8))
    sent = delivered_text(out, "── digest for the owner ──")
    # A week later another run claimed 2024-W11 a minute ago and is still sending it.
    community_id = scalar(db, "SELECT id FROM communities")
    assert isinstance(community_id, int)
    now = T0 + timedelta(days=15)
    assert claim_digest(db, community_id, "2024-W11", now=now - timedelta(minutes=1), late=True, claimed_by="vps:42")
    _, later = session(settings, [":digest"], at=now)
    assert "the digest of 2024-W11 is claimed by a run that has not finished sending it" in later
    assert "the digest of 2024-W10, sent Tue 12 Mar 2024 12:00 (Europe/Berlin), late, as the owner received it" in later
    assert delivered_text(later, "── digest for the owner (already sent) ──") == sent


def test_the_console_owner_is_not_a_member(settings: Settings, db: Engine) -> None:
    _, out = session(settings, ["@alice hello", "@bob hi", "@owner /stats", "@owner /report", "@owner /revenue"])
    # @owner only ran commands: alice and bob are the members.
    assert re.search(r"^\s*Members: 2$", answer_after(out, "@owner /report"), re.MULTILINE)


def test_nudges_runs_the_real_job_and_the_member_can_stop_them(settings: Settings, db: Engine) -> None:
    session(settings, ["@bob hello", "@alice hi"])
    later = T0 + timedelta(days=20)
    code, out = session(settings, ["@alice still here", ":nudges", "1", "@bob /nudges"], at=later)
    assert code == 0
    nudges = answer_after(out, ":nudges")
    assert "── nudge to @bob ──" in nudges
    assert "── nudge to @alice ──" not in nudges  # she posted today
    assert "[1] Stop these reminders: @bob /nudges off" in nudges
    assert "sent 1" in nudges
    assert "Done: I won't send you reminder messages." in answer_after(out, "1")
    assert "Reminder messages are off for you." in out.split("bob> @bob /nudges\n", 1)[1]
    assert scalar(db, "SELECT count(*) FROM nudges WHERE sent_at IS NOT NULL") == 1


# --- input handling and the session ------------------------------------------------------------------------------


def test_unknown_input_gets_a_one_line_hint_and_changes_nothing(settings: Settings, db: Engine) -> None:
    _, out = session(settings, [":dance", "/", "@ hello", "7", "hello from you"])
    for typed in (":dance", "/", "@ hello", "7"):
        hint = answer_after(out, typed)
        assert hint.startswith("?") and "\n" not in hint, typed
    assert [m[0] for m in messages_of(db, "you")] == [14]  # plain text is the current member ("you") speaking
    assert scalar(db, "SELECT count(*) FROM messages") == 1


def test_end_of_input_and_quit_stop_cleanly_with_everything_stored(settings: Settings, db: Engine) -> None:
    many = [f"@m{i} message {i}" for i in range(30)]
    code, out = session(settings, [*many, ":quit", "@alice typed after quitting"])
    assert code == 0
    assert scalar(db, "SELECT count(*) FROM messages") == 30
    assert messages_of(db, "alice") == []
    assert out.rstrip().endswith(f"bye: everything typed is stored in {settings.storage.url}")
    code, _ = session(settings, ["@alice no quit, just the end of the input"])
    assert code == 0 and len(messages_of(db, "alice")) == 1


class ClosingOutput(io.StringIO):
    """Standard output piped into a reader that stops reading (``cohortbot console | head``)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, s: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= s.count("\n")
        return super().write(s)


def test_a_closed_output_ends_the_session_cleanly(
    settings: Settings, db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    out = ClosingOutput(lines=12)
    typed = "".join(f"@m{i} message {i}\n" for i in range(50))
    assert run_console(settings, stdin=io.StringIO(typed), stdout=out, clock=FakeClock(T0)) == 0
    stored = scalar(db, "SELECT count(*) FROM messages")
    assert isinstance(stored, int) and 0 < stored < 50  # what was answered is stored; then the session ended
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_banner_and_help_explain_who_is_admin(settings: Settings) -> None:
    _, out = session(settings, [":help"], admins=["Carol"])
    assert out.startswith("cohortbot console · PyCraft\n")
    assert "You are @you. Admins: @owner, @carol." in out
    assert "@owner is always an admin; so are @carol (--admin)" in answer_after(out, ":help")


# --- settings and the database -----------------------------------------------------------------------------------


def test_a_missing_or_unmigrated_database_is_refused_with_what_to_run(tmp_path: Path) -> None:
    missing = parse_settings(config_data(tmp_path / "nothing-here.db"))
    with pytest.raises(ConsoleError, match="cohortbot demo"):
        session(missing, ["@alice hi"])
    assert not (tmp_path / "nothing-here.db").exists()
    empty = tmp_path / "empty.db"
    make_engine(f"sqlite:///{empty.as_posix()}").connect().close()
    with pytest.raises(ConsoleError, match=r"has no cohortbot schema.*cohortbot db upgrade"):
        session(parse_settings(config_data(empty)), ["@alice hi"])


def test_console_settings_use_the_config_or_else_the_demo_database(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[community]\nname = "Mine"\n', encoding="utf-8")
    assert console_settings(config).community.name == "Mine"
    out = tmp_path / "cohortbot-demo"
    with pytest.raises(ConsoleError, match=r"run `cohortbot demo` first.*--config"):
        console_settings(None, demo_out=out)
    out.mkdir()
    engine = make_engine(f"sqlite:///{(out / DATABASE_NAME).as_posix()}")
    upgrade(engine)
    IngestStore(engine).register_community("PyCraft (demo)", "America/New_York")  # a demo run with another zone
    engine.dispose()
    found = console_settings(None, demo_out=out)
    assert (found.community.name, found.community.timezone) == ("PyCraft (demo)", "America/New_York")
    assert found.courses and found.courses == demo_settings(out / DATABASE_NAME).courses
    _, printed = session(found, ["@alice /courses"])
    assert "cohortbot console · PyCraft (demo)" in printed
    assert f"[1] Buy {found.courses[0].title}: /buy {found.courses[0].id}" in printed


@pytest.mark.slow
def test_the_console_carries_on_in_the_demo_community_and_the_demo_can_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_demo(members=40, weeks=2, seed=5, out=Path("cohortbot-demo"), stream=io.StringIO())
    settings = console_settings(None)
    code, out = session(settings, ["@alice hello", "@owner /report", ":digest"], at=None)
    assert code == 0
    end = START + timedelta(weeks=2)  # the Monday the demo's last weekly digest was due
    day = f"{end:%a} {end.day} {end:%b %Y}"
    assert f"now: {day} 09:00 (Europe/Berlin), the demo's simulated time" in out  # not today's date
    report = answer_after(out, "@owner /report")
    assert f"PyCraft (demo): report as of {day}" in report
    (chart,) = written_files(report)
    assert chart.parent == tmp_path / "cohortbot-demo-console-files"  # outside the folder the demo replaces
    # The demo sent that week's digest; this console shows it again as the demo's owner received it (stored).
    year, week, _ = (end - timedelta(weeks=1)).isocalendar()
    shown = answer_after(out, ":digest")
    assert f"the digest of {year}-W{week:02d}, sent {day} 09:00 (Europe/Berlin), as the owner received it" in shown
    assert f"PyCraft (demo): week {year}-W{week:02d}" in delivered_text(
        shown, "── digest for the owner (already sent) ──"
    )
    run_demo(members=40, weeks=2, seed=5, out=Path("cohortbot-demo"), stream=io.StringIO())  # not refused


def test_purchases_from_other_platforms_are_not_the_console_members(settings: Settings, db: Engine) -> None:
    store = IngestStore(db)
    community_id = store.register_community("PyCraft", "Europe/Berlin")
    sync_courses(db, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    store.record_purchase(
        PurchaseEvent(
            Platform.TELEGRAM,
            "PyCraft",
            "tg-1",
            MemberRef("alice"),
            "py-async",
            500,
            "XTR",
            T0,
            PurchaseSource.TELEGRAM_STARS,
        )
    )
    _, out = session(settings, ["@alice /buy py-async"])
    assert "SIMULATED PAYMENT" in out  # the console's alice is not Telegram user "alice"


@pytest.mark.slow
def test_cohortbot_console_in_a_subprocess_reads_stdin(tmp_path: Path, settings: Settings, db: Engine) -> None:
    config = tmp_path / "cohortbot.toml"
    config.write_text(
        "[community]\n"
        'name = "PyCraft"\n'
        f"[storage]\nurl = {json.dumps(settings.storage.url)}\n"
        "[[courses]]\n"
        'id = "py-async"\n'
        'title = "Async Python"\n'
        "price_stars = 500\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--config", str(config), "--admin", "alice"],
        input="@alice hello from a pipe\n/stats\n/revenue\n/buy py-async\n:pay\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Last 7 days: 1 message on 1 active day" in done.stdout
    assert "only for the community's admins" not in done.stdout  # --admin alice
    assert "SIMULATED PAYMENT — no money moves" in done.stdout
    assert messages_of(db, "alice") == [(17, False, None)]
    assert rows(db, "SELECT source FROM purchases") == [("simulated",)]
