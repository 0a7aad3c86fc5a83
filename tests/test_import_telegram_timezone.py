"""Old Telegram exports without ``date_unixtime``: read as UTC, or in the zone given with ``--timezone``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from bot.cli import main
from bot.importers.telegram_export import parse_telegram_export
from storage.events import MessageEvent
from tests.conftest import COMMUNITY
from tests.test_import_telegram import export, write
from tests.test_report_end_to_end import write_config


def old_export(tmp_path: Path) -> Path:
    """The sample export as an old Telegram Desktop writes it: local wall-clock ``date`` only."""
    doc = export()
    for item in doc["messages"]:
        item.pop("date_unixtime", None)
    return write(tmp_path / "result.json", doc)


def test_old_dates_are_read_in_the_given_zone(tmp_path: Path) -> None:
    path = old_export(tmp_path)
    as_utc = next(e for e in parse_telegram_export(path, COMMUNITY).events if isinstance(e, MessageEvent))
    berlin = parse_telegram_export(path, COMMUNITY, local_zone=ZoneInfo("Europe/Berlin"))
    in_berlin = next(e for e in berlin.events if isinstance(e, MessageEvent))
    assert as_utc.occurred_at == datetime(2024, 3, 4, 9, 1, tzinfo=UTC)
    assert in_berlin.occurred_at == datetime(2024, 3, 4, 8, 1, tzinfo=UTC)  # 09:01 in Berlin (UTC+1)


@pytest.mark.storage
def test_cli_timezone_option(engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "c.toml", db_url)
    path = old_export(tmp_path)
    args = ["import", "telegram-export", str(path), "--config", str(config)]
    with pytest.raises(SystemExit):
        main([*args, "--timezone", "Mars/Olympus"])
    assert "expected an IANA time zone like Europe/Berlin or UTC, got 'Mars/Olympus'" in capsys.readouterr().err
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 0  # nothing imported

    assert main([*args, "--timezone", "America/New_York"]) == 0
    with engine.connect() as conn:
        first = conn.execute(text("SELECT min(created_at) FROM messages")).scalar()
    stamp = first if isinstance(first, datetime) else datetime.fromtimestamp(int(first) / 1000, UTC)
    # 09:01 on the New York wall clock is 14:01 UTC (EST, UTC-5).
    assert stamp.astimezone(UTC).replace(tzinfo=UTC) == datetime(2024, 3, 4, 14, 1, tzinfo=UTC)
