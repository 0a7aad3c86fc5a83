"""End to end: the real ``cohortbot run`` in a subprocess, connected to the fake Discord, with a SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.fakes.discord_api import TOKEN, FakeDiscord
from tests.helpers.cohortbot_process import run_cli, running_bot

from .conftest import (
    ADMIN_ROLE,
    ANN_ID,
    BOB_ID,
    CARA_ID,
    GUILD_ID,
    PY_ROLE,
    RUST_ROLE,
    RUST_SKU,
)
from .test_adapter import body, sent_message

pytestmark = pytest.mark.slow

EPHEMERAL = 64
ROLE_PATH = rf"/guilds/{GUILD_ID}/members/(\d+)/roles/(\d+)"


def write_config(path: Path, fake: FakeDiscord, db: Path) -> None:
    path.write_text(
        f"""
[community]
name = "PyCraft"
timezone = "UTC"

[storage]
url = "sqlite:///{db}"

[discord]
enabled = true
guild_ids = [{GUILD_ID}]
admin_role_ids = [{ADMIN_ROLE}]
api_base_url = "{fake.api_base_url}"
gateway_url = "{fake.gateway_url}"

[digest]
enabled = false

[[courses]]
id = "py-async"
title = "Async Python"
price = 49
currency = "EUR"
checkout_url = "https://pycraft.example/checkout/py-async"
discord_role_id = {PY_ROLE}

[[courses]]
id = "rust-intro"
title = "Intro to Rust"
price_stars = 350
discord_role_id = {RUST_ROLE}
discord_sku_id = {RUST_SKU}
""",
        encoding="utf-8",
    )


SECRETS = {"COHORTBOT_DISCORD_TOKEN": TOKEN}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    from .conftest import make_guild

    async with FakeDiscord([make_guild()]) as server:
        yield server


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def role_changes(fake: FakeDiscord, method: str) -> list[tuple[str, str]]:
    return [(c.path.split("/")[4], c.path.split("/")[6]) for c in fake.find(method, ROLE_PATH)]


async def test_cohortbot_run_on_discord(fake: FakeDiscord, tmp_path: Path) -> None:
    db, config = tmp_path / "e2e.db", tmp_path / "cohortbot.toml"
    write_config(config, fake, db)
    code, err = await run_cli("db", "upgrade", "--config", str(config), secrets=SECRETS)
    assert code == 0, err

    async with running_bot(config, SECRETS) as bot:
        guild = fake.guild()

        # Logging: messages (a reply, a thread), reactions, a join and a leave.
        first = await fake.message(ANN_ID, "hello everyone")
        await fake.message(BOB_ID, "welcome", reply_to=(first, ANN_ID))
        await fake.message(ANN_ID, "a question", channel_id=guild.thread_id)
        await fake.reaction(BOB_ID, first, author_id=ANN_ID)
        await fake.reaction(CARA_ID, first, emoji="👀")
        await fake.reaction(CARA_ID, first, emoji="👀", added=False)
        await fake.member_join("810000000000000077", "eve")
        await fake.member_leave("810000000000000077")

        # /stats for a member: an ephemeral answer.
        token = await fake.slash(ANN_ID, "stats")
        [stats] = await fake.wait_responses(token, within=20)
        assert stats.json["type"] == 4 and stats.json["data"]["flags"] & EPHEMERAL

        # /report: refused to a member, answered to an admin (by role) with a chart image.
        token = await fake.slash(ANN_ID, "report")
        [refused] = await fake.wait_responses(token, within=20)
        assert "only for the community's admins" in refused.json["data"]["content"]
        token = await fake.slash(BOB_ID, "report")
        answered = await fake.wait_for(lambda: any(c.files for c in fake.responses(token)), within=30)
        assert answered
        images = [name for c in fake.responses(token) for name in c.files if name.endswith(".png")]
        assert images

        # A purchase through a Discord entitlement gives the course role.
        entitlement = fake.entitlement(CARA_ID, RUST_SKU)
        await fake.dispatch("ENTITLEMENT_CREATE", entitlement)
        await fake.wait_for(lambda: (CARA_ID, RUST_ROLE) in role_changes(fake, "PUT"), within=20)

        # An external payment recorded with /grant gives the role too; /refund takes it away.
        token = await fake.slash(BOB_ID, "grant", {"member": ANN_ID, "course": "py-async"})
        await fake.wait_responses(token, within=20)
        assert (ANN_ID, PY_ROLE) in role_changes(fake, "PUT")
        token = await fake.slash(BOB_ID, "refund", {"member": ANN_ID, "course": "py-async"})
        [ask] = await fake.wait_responses(token, within=20)
        [button] = [b for row in body(ask)["components"] for b in row["components"]]
        press = await fake.press(
            BOB_ID, sent_message(SimpleNamespace(fake=fake), ask), button["custom_id"]
        )  # confirm the refund
        await fake.wait_responses(press, within=20)
        assert (ANN_ID, PY_ROLE) in role_changes(fake, "DELETE")

        # Deleting the entitlement (a Discord refund) removes the role.
        await fake.dispatch("ENTITLEMENT_DELETE", entitlement)
        await fake.wait_for(lambda: (CARA_ID, RUST_ROLE) in role_changes(fake, "DELETE"), within=20)

        # A forced reconnect: what is sent meanwhile is replayed on RESUME.
        await fake.force_reconnect(how="close")
        for i in range(3):
            await fake.message(CARA_ID, f"while away {i}")
        await fake.wait_for(lambda: fake.resumes and fake.connected, within=20)
        last = [await fake.message(BOB_ID, f"last words {i}") for i in range(5)]
        # A command after the last messages: once it is answered, the bot has read everything before it.
        token = await fake.slash(ANN_ID, "help")
        await fake.wait_responses(token, within=20)
        assert len(fake.identifies) == 1

        assert await bot.terminate() == 0, bot.log

    assert TOKEN not in bot.log
    messages = rows(db, "SELECT platform_message_id FROM messages")
    assert len(messages) == 3 + 3 + 5
    assert (last[-1],) in messages
    assert rows(db, "SELECT count(*) FROM reactions WHERE removed_at IS NULL") == [(1,)]
    assert rows(db, "SELECT kind FROM membership_events ORDER BY id") == [("join",), ("leave",)]
    sales = rows(
        db,
        "SELECT p.source, c.course_key, f.id IS NOT NULL FROM purchases p JOIN courses c ON c.id = p.course_id "
        "LEFT JOIN refunds f ON f.purchase_id = p.id ORDER BY p.id",
    )
    assert sales == [("discord_entitlement", "rust-intro", 1), ("grant", "py-async", 1)]
