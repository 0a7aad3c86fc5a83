"""``cohortbot demo`` end to end on a small community: what it prints, the files it writes, what it stored."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.config import load_settings
from bot.demo import DATABASE_NAME, DemoError, DemoResult, run_demo
from bot.reporting import ReportRequest, build_community_report
from storage.engine import make_engine
from storage.models import Digest, Member, Nudge, Purchase, Refund

MEMBERS, WEEKS = 150, 6
# The simulation is deterministic: with this seed the small community also has a refund (most small seeds have
# none, as refunds are rare). If the model changes and this fails on refunds, pick another seed that has one.
SEED = 1
WEEKS_SIMULATED = [f"2025-W{week:02d}" for week in range(2, 2 + WEEKS)]  # the demo starts on Monday 6 Jan 2025
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def comparable(output: str, out: Path) -> str:
    """The output without the wall-time line and with the output directory replaced."""
    lines = [line for line in output.splitlines() if not line.startswith("Wall time:")]
    return "\n".join(lines).replace(str(out.resolve()), "OUT").replace(str(out), "OUT")


def numbers(output: str) -> list[str]:
    return re.findall(r"\d[\d,.]*", comparable(output, Path("OUT")))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    stream = io.StringIO()
    result = run_demo(
        members=MEMBERS, weeks=WEEKS, seed=SEED, out=tmp_path_factory.mktemp("demo") / "out", stream=stream
    )
    assert result.output in stream.getvalue()  # everything the result keeps was printed
    return result


def test_output_shows_progress_the_digest_a_members_stats_and_the_admin_report(demo: DemoResult) -> None:
    out = demo.output
    assert f"week {WEEKS}/{WEEKS}" in out
    assert "== The last weekly digest, as the owner read it ==" in out
    assert f"PyCraft (demo): week {WEEKS_SIMULATED[-1]}" in out
    assert "Sales this week" in out and "Nudges (decided in the 4 weeks before the last 7 days)" in out
    assert "/stats, as " in out and "Your activity in PyCraft (demo)" in out
    assert "Last 7 days: " in out and "Rank: #" in out
    assert "/report, as Mara (owner) (an admin) sees it" in out and "PyCraft (demo): report as of" in out
    assert "Revenue, net of refunds" in out
    assert "Sorry" not in out  # no command failed or was refused
    assert f"HTML report: {demo.html_report}" in out
    for chart in demo.charts:
        assert str(chart) in out


def test_the_charts_are_png_files_and_the_report_is_an_html_page(demo: DemoResult) -> None:
    names = {p.name for p in demo.charts}
    assert {"activity.png", "cohort_heatmap.png", "retention_curves.png", "revenue.png"} <= names
    assert f"digest-{WEEKS_SIMULATED[-1]}-activity.png" in names
    for chart in demo.charts:
        data = chart.read_bytes()
        assert data.startswith(PNG_SIGNATURE), chart
        assert len(data) > 5_000, chart  # a drawn chart, not an empty canvas
    html = demo.html_report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert html.rstrip().endswith("</html>")
    assert "PyCraft (demo)" in html and "data:image/png;base64," in html


def test_the_database_holds_sales_refunds_nudges_with_a_holdout_and_one_digest_per_week(demo: DemoResult) -> None:
    engine = make_engine(f"sqlite:///{demo.database}")
    try:
        with engine.connect() as conn:
            purchases = conn.execute(select(func.count()).select_from(Purchase)).scalar_one()
            refunds = conn.execute(select(func.count()).select_from(Refund)).scalar_one()
            sent = conn.execute(
                select(func.count()).where(Nudge.group == "nudged", Nudge.sent_at.is_not(None))
            ).scalar_one()
            holdout = conn.execute(select(func.count()).where(Nudge.group == "holdout")).scalar_one()
            opted_out = conn.execute(select(func.count()).where(Member.nudges_opt_out.is_(True))).scalar_one()
            digests = conn.execute(select(Digest.week, Digest.sent_at).order_by(Digest.week)).all()
            platforms = set(conn.execute(select(Member.platform).distinct()).scalars())
    finally:
        engine.dispose()
    assert purchases > 0 and refunds > 0
    assert sent > 0 and holdout > 0
    assert opted_out > 0  # members sent /nudges off through the dispatcher
    assert (purchases, refunds, sent, holdout, opted_out) == (
        demo.purchases,
        demo.refunds,
        demo.nudges_sent,
        demo.nudges_held_out,
        demo.opt_outs,
    )
    assert [week for week, _ in digests] == WEEKS_SIMULATED  # claimed once per simulated week, no other week
    assert all(sent_at is not None for _, sent_at in digests)
    assert demo.digests == WEEKS and f"Digests: {WEEKS} received by the owner" in demo.output
    assert platforms == {"simulated"}


def test_the_cli_replaces_a_previous_demo_and_the_same_seed_prints_the_same_numbers(
    demo: DemoResult, tmp_path: Path
) -> None:
    out = tmp_path / "again"
    shutil.copytree(demo.out, out)  # a previous demo's directory: the run replaces it
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    args = ["demo", "--members", str(MEMBERS), "--weeks", str(WEEKS), "--seed", str(SEED), "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^Wall time: \d+\.\d s$", result.stdout, re.MULTILINE)
    assert comparable(result.stdout, out) == comparable(demo.output, demo.out)
    assert (out / DATABASE_NAME).is_file()


def test_another_seed_gives_another_community(demo: DemoResult, tmp_path: Path) -> None:
    other = run_demo(members=MEMBERS, weeks=WEEKS, seed=SEED + 1, out=tmp_path / "other", stream=io.StringIO())
    assert numbers(other.output) != numbers(demo.output)
    assert (other.messages, other.purchases) != (demo.messages, demo.purchases)


def test_refuses_a_directory_with_files_that_are_not_a_demos(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine", encoding="utf-8")
    with pytest.raises(DemoError, match="not empty and holds no previous demo"):
        run_demo(members=10, weeks=1, out=tmp_path, stream=io.StringIO())
    assert notes.read_text(encoding="utf-8") == "mine"


def test_refuses_a_previous_demo_directory_with_foreign_files_added(demo: DemoResult, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    shutil.copytree(demo.out, out)
    (out / "report" / "my-notes.md").write_text("mine", encoding="utf-8")
    with pytest.raises(DemoError, match=r"files the demo did not write \(report/my-notes.md\)"):
        run_demo(members=10, weeks=1, out=out, stream=io.StringIO())
    assert (out / DATABASE_NAME).is_file()  # nothing was deleted


def test_cli_reports_a_refused_directory_as_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--members", "10", "--weeks", "1", "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "holds no previous demo" in result.stderr


def test_the_owner_is_the_host_not_a_member(demo: DemoResult) -> None:
    report = demo.output.split("/report, as Mara (owner) (an admin) sees it", 1)[1]
    members = re.search(r"Members: ([\d,]+)", report)
    assert members is not None
    engine = make_engine(f"sqlite:///{demo.database}")
    with engine.connect() as conn:
        owner_messages = conn.execute(
            text(
                "SELECT count(*) FROM messages m JOIN members u ON u.id = m.member_id "
                "WHERE u.platform_user_id = 'owner'"
            )
        ).scalar()
    engine.dispose()
    assert owner_messages  # Mara posts in the community ...
    assert int(members.group(1).replace(",", "")) == demo.members - demo.left  # ... but only the joiners are members


def test_it_ends_with_dashboard_commands_whose_config_opens_the_demo_database(demo: DemoResult) -> None:
    block = demo.output.split("== Open the dashboard on this database ==", 1)[1]
    commands = [
        shlex.split(line.removesuffix(" &"))
        for line in block.splitlines()
        if line.strip().startswith("cohortbot dashboard")
    ]
    assert [command[:3] for command in commands] == [
        ["cohortbot", "dashboard", "serve"],
        ["cohortbot", "dashboard", "link"],
    ]
    assert "COHORTBOT_SECRET" in block
    for command in commands:
        assert command[3] == "--config"
        config = Path(command[4])
        assert config.is_file() and config == demo.config.resolve()
        settings = load_settings(config)
        assert settings.community.name == "PyCraft (demo)"
        assert make_url(settings.storage.url).database == str(demo.database.resolve())
    # The file really opens the demo's database through the CLI (a `--config` command like the dashboard's).
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    status = subprocess.run(
        [sys.executable, "-m", "bot", "db", "status", "--config", str(demo.config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr


def test_the_first_course_changes_price_once_so_the_report_has_price_points_and_an_elasticity(
    demo: DemoResult,
) -> None:
    engine = make_engine(f"sqlite:///{demo.database}")
    try:
        with engine.connect() as conn:
            prices = conn.execute(
                text("SELECT c.course_key, p.amount FROM purchases p JOIN courses c ON c.id = p.course_id")
            ).all()
        last_sunday = date(2025, 1, 6) + timedelta(weeks=WEEKS, days=-1)
        report, _ = build_community_report(
            engine,
            ReportRequest("PyCraft (demo)", as_of=last_sunday, weeks=WEEKS),
            now=datetime(2025, 3, 1, tzinfo=UTC),
        )
    finally:
        engine.dispose()
    by_course: dict[str, set[int]] = {}
    for course, amount in prices:
        by_course.setdefault(course, set()).add(amount)
    # Early bird at 80% of 49 EUR for two weeks after the launch, then the full price; the other courses keep theirs.
    assert by_course["py-async"] == {3900, 4900}
    assert all(len(amounts) == 1 for course, amounts in by_course.items() if course != "py-async")
    courses = {c.course: c for c in report.commerce.courses}
    first = courses["py-async"]
    assert sorted(p.price for p in first.price_points) == [39.0, 49.0]
    assert sum(p.sales for p in first.price_points) == first.sales
    assert first.arc_elasticity is not None and first.arc_elasticity < 0  # the dearer price sold less per week
    html = demo.html_report.read_text(encoding="utf-8")
    assert re.search(r"39\.00 EUR × \d+, 49\.00 EUR × \d+", html)  # the price points column


def test_a_one_week_demo_of_one_member_counts_in_the_singular(tmp_path: Path) -> None:
    result = run_demo(members=1, weeks=1, out=tmp_path / "tiny", stream=io.StringIO())
    first = result.output.splitlines()[0]
    assert first.startswith("cohortbot demo: 1 member of PyCraft (demo) over 1 week (seed 1)")
    happened = result.output.split("== What happened ==", 1)[1]
    activity = next(line.strip() for line in happened.splitlines() if "Activity:" in line)
    messages, reactions = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:message|reaction)", activity))
    assert activity == (
        f"Activity: {messages:,} {'message' if messages == 1 else 'messages'}, "
        f"{reactions:,} {'reaction' if reactions == 1 else 'reactions'}"
    )
