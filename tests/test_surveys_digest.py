"""The owners' digest shows satisfaction (NPS with its interval and the newest comments); the digest posted to the
community never does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from bot.config import Settings, parse_settings
from bot.core.digest import build_digest
from bot.core.markup import render_plain
from storage.ingest import IngestStore
from storage.surveys import create_survey, record_answer
from tests.conftest import COMMUNITY, Events

pytestmark = pytest.mark.storage

NOW = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)


def settings() -> Settings:
    return parse_settings({"community": {"name": COMMUNITY, "timezone": "Europe/Berlin"}})


def test_owners_read_the_nps_and_comments_members_never_do(engine: Engine, store: IngestStore, ev: Events) -> None:
    community_id = store.community_id(COMMUNITY)
    store.write_batch([ev.message("u1", at=datetime(2024, 3, 5, 12, tzinfo=UTC))])
    asked = datetime(2024, 3, 6, 12, tzinfo=UTC)
    survey_id = create_survey(engine, community_id, kind="nps", origin="channel", question="Q?", now=asked, audience=4)
    record_answer(engine, community_id, survey_id, "discord", "u1", now=asked, score=10, comment="Helpful people")
    record_answer(engine, community_id, survey_id, "discord", "u2", now=asked, score=2)
    owners = render_plain(build_digest(engine, settings(), community_id, now=NOW, for_admins=True).text)
    assert "Satisfaction (NPS)" in owners
    assert "All answers: NPS +0 (95% interval" in owners and "2 answers, response rate 50%" in owners
    assert "“Helpful people” (promoter, community)" in owners
    members = render_plain(build_digest(engine, settings(), community_id, now=NOW, for_admins=False).text)
    assert "NPS" not in members and "Helpful people" not in members
