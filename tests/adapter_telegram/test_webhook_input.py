"""The webhook refuses well-formed JSON that is not shaped like a Telegram update: 400, nothing stored, never 500."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.adapters.telegram.shape import MAX_DEPTH, check_update_shape
from bot.core.payments import sign_payload
from tests.adapter_telegram.conftest import PRICE, SECRET, running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi

HEADERS = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def good(update_id: int = 1) -> dict[str, Any]:
    return p.group_message(p.ALICE, "a real message", message_id=900 + update_id) | {"update_id": update_id}


def changed(path: list[str | int], value: Any) -> dict[str, Any]:
    """A good update with the value at ``path`` replaced."""
    update = copy.deepcopy(good())
    target: Any = update
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return update


def nested(depth: int) -> dict[str, Any]:
    """A message replying to a message replying to ... ``depth`` levels (Telegram sends one)."""
    inner: dict[str, Any] = copy.deepcopy(good()["message"])
    for _ in range(depth):
        inner = copy.deepcopy(good()["message"]) | {"reply_to_message": inner}
    return {"update_id": 1, "message": inner}


def raw_nesting(depth: int) -> bytes:
    """Brackets nested deeper than the JSON parser's recursion limit."""
    return b'{"update_id": 1, "message": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


WRONG_TYPES = {
    "message is a string": changed(["message"], "str"),
    "message is an array": changed(["message"], [1, 2]),
    "from.id is a string": changed(["message", "from", "id"], "x"),
    "chat.id is a float": changed(["message", "chat", "id"], 1.5),
    "chat is an array": changed(["message", "chat"], [p.GROUP]),
    "from is a number": changed(["message", "from"], p.ALICE),
    "text is a number": changed(["message", "text"], 5),
    "date is a string": changed(["message", "date"], "yesterday"),
    "message_id is true": changed(["message", "message_id"], True),
    "entities is an object": changed(["message", "entities"], {"type": "bot_command"}),
    "entities holds a string": changed(["message", "entities"], ["bold"]),
    "update_id is a string": good() | {"update_id": "7"},
    "reaction user id is a string": {"update_id": 2, **p.reaction(p.ALICE, 5)}
    | {"message_reaction": p.reaction(p.ALICE, 5)["message_reaction"] | {"user": {"id": "x", "is_bot": False}}},
    "callback query is a string": {"update_id": 3, "callback_query": "press"},
    "not an object": [good()],
    "no update_id": good()["message"],
    "deep nesting": nested(MAX_DEPTH + 5),
}


@pytest.mark.parametrize("update", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
def test_the_shape_check_names_what_is_wrong(update: Any) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        check_update_shape(update)


REACTION_COUNT = {
    "update_id": 12,
    "message_reaction_count": {
        "chat": {"id": -1002236736395, "title": "News", "type": "channel"},
        "message_id": 36,
        "date": 1721306391,
        "reactions": [{"type": {"type": "emoji", "emoji": "🗿"}, "total_count": 2}],  # "type" is an object here
    },
}
PASSPORT = good(13) | {"message": good()["message"] | {"passport_data": {"data": [], "credentials": {}}}}


@pytest.mark.parametrize(
    "update",
    [
        good(),
        p.reaction(p.ALICE, 5) | {"update_id": 9},
        p.chat_member(p.BOB, "left", "member") | {"update_id": 10},
        p.successful_payment(p.ALICE, sign_payload(SECRET, "py-async", str(p.ALICE), PRICE), PRICE, charge="c1")
        | {"update_id": 11},
        p.pre_checkout(p.ALICE, "payload", PRICE) | {"update_id": 14},
        p.callback(p.ALICE, "/stats") | {"update_id": 15},
        REACTION_COUNT,
        PASSPORT,
        nested(3),
    ],
    ids=[
        "message",
        "reaction",
        "chat-member",
        "payment",
        "pre-checkout",
        "button",
        "reaction-count",
        "passport",
        "reply-chain",
    ],
)
def test_real_updates_pass_the_shape_check(update: dict[str, Any]) -> None:
    check_update_shape(update)


def _recorded_updates() -> list[Path]:
    folder = Path(__file__).resolve().parents[1] / "fixtures" / "platform-payloads" / "telegram"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _updates_in(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        if "update_id" in value:
            return [value]
        return [u for v in value.values() for u in _updates_in(v)]
    if isinstance(value, list):
        return [u for v in value for u in _updates_in(v)]
    return []


def test_every_recorded_telegram_update_passes_the_shape_check() -> None:
    files = _recorded_updates()
    if not files:
        pytest.skip("no recorded Telegram payloads (tests/fixtures/platform-payloads/telegram) in this checkout")
    updates = [u for f in files for u in _updates_in(json.loads(f.read_text(encoding="utf-8")))]
    assert len(updates) >= 10
    for update in updates:
        check_update_shape(update)  # a real update refused would be lost: Telegram gives up on a 4xx


async def test_wrongly_typed_updates_are_answered_400_and_stored_nowhere(
    fake: FakeBotApi, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTBOT_TELEGRAM_WEBHOOK_SECRET", "s3cret-token")
    port = free_port()
    async with running(
        fake, db_path, mode="webhook", webhook_listen=f"127.0.0.1:{port}", webhook_url="https://bot.pycraft.dev/tg"
    ) as h:
        await fake.wait_for("setWebhook")
        url = f"http://127.0.0.1:{port}/tg"
        bodies = [json.dumps(u).encode() for u in WRONG_TYPES.values()] + [raw_nesting(100_000)]
        async with aiohttp.ClientSession() as http:
            statuses = []
            for body in bodies:
                async with http.post(url, data=body, headers=HEADERS) as response:
                    statuses.append(response.status)
            assert statuses == [400] * len(bodies)
            await h.settle()
            tables = ("messages", "members", "channels", "reactions", "membership_events", "purchases")
            assert {t: h.count(f"select count(*) from {t}") for t in tables} == dict.fromkeys(tables, 0)
            assert fake.calls_to("sendMessage") == []
            # The endpoint still takes real updates afterwards.
            async with http.post(url, data=json.dumps(good(50)).encode(), headers=HEADERS) as response:
                assert response.status == 200
            assert h.count("select count(*) from messages") == 1
