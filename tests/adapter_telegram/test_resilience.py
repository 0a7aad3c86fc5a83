"""The bot never goes deaf: a locked database, an unreachable Bot API at start, a polling task that dies.

Every test drives the real python-telegram-bot client against the fake Bot API over HTTP, with a real SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.telegram.adapter import TelegramAdapter
from bot.app import TaskDiedError, build_app, serve
from bot.config import Secrets, parse_settings
from bot.core.payments import sign_payload
from bot.core.ports import AdapterStartError
from storage.engine import make_engine
from storage.migrate import upgrade
from tests.adapter_telegram.conftest import FAST, PRICE, SECRET, config, running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.sqlite_lock import write_locked


async def logged(caplog: pytest.LogCaptureFixture, needle: str, *, count: int = 1, within: float = 10.0) -> None:
    """Wait until ``needle`` appears in ``count`` log records."""
    deadline = time.monotonic() + within
    while sum(needle in r.getMessage() for r in caplog.records) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not logged {count} time(s); log:\n{caplog.text}")
        await asyncio.sleep(0.02)


def to(chat_id: int) -> Callable[..., bool]:
    return lambda call: int(call.params.get("chat_id", 0)) == chat_id


async def test_a_payment_arriving_while_the_database_is_locked_is_stored_once_after_it_frees(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    payload = sign_payload(SECRET, "py-async", str(p.ALICE), PRICE)
    before = p.group_message(p.BOB, "anyone around?", message_id=1) | {"update_id": 10}
    payment = p.successful_payment(p.ALICE, payload, PRICE, charge="stxLOCKED") | {"update_id": 11}
    after = p.group_message(p.CAROL, "yes!", message_id=2) | {"update_id": 12}
    # SQLite gives up on the lock after 100 ms here (10 s in production), so storing really fails while it is held.
    async with running(fake, db_path, busy_timeout_ms=100, retry_wait=0.2) as h:
        with write_locked(db_path):
            for update in (before, payment, after):
                await fake.add_update(update)
            # Retried with back-off (0.2 s, 0.4 s, 0.8 s …), each failure logged with its cause.
            await logged(caplog, "storing Telegram update 11 failed (OperationalError: database is locked)", count=3)
            assert 11 not in fake.confirmed_ids  # Telegram keeps it: a crash now would not lose the payment
            assert not fake.calls_to("createChatInviteLink")  # no access before the sale is on disk
        await fake.wait_confirmed([10, 11, 12])
        await h.settle()
        assert h.count("select count(*) from purchases where charge_id = 'stxLOCKED'") == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1
        receipts = [c for c in fake.calls_to("sendMessage") if "fakeInvite" in c.params.get("text", "")]
        assert len(receipts) == 1 and to(p.ALICE)(receipts[0])
        assert h.count("select count(*) from messages") == 2
        # The poller kept going: later updates are fetched and stored.
        await h.deliver(p.group_message(p.BOB, "still here", message_id=3) | {"update_id": 13})
        await h.eventually(lambda: h.count("select count(*) from messages") == 3, "the later message stored")
    assert h.count("select count(*) from purchases") == 1
    assert len(fake.calls_to("createChatInviteLink")) == 1


async def test_stopping_while_a_payment_waits_to_be_retried_leaves_it_to_telegram(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = sign_payload(SECRET, "py-async", str(p.ALICE), PRICE)
    hello = p.group_message(p.BOB, "hello", message_id=1) | {"update_id": 19}
    payment = p.successful_payment(p.ALICE, payload, PRICE, charge="stxSTOP") | {"update_id": 20}
    # The payment's next try is 30 s away when the bot is stopped; the writer retries the message sooner.
    async with running(fake, db_path, busy_timeout_ms=100, retry_wait=30.0, writer_retry_wait=0.2) as h:
        with write_locked(db_path):
            await fake.add_update(hello)
            await fake.add_update(payment)
            await logged(caplog, "storing Telegram update 20 failed")
        started = time.monotonic()
        await h.adapter.stop()  # does not wait out the 30 s back-off
        assert time.monotonic() - started < 10
        assert h.count("select count(*) from messages") == 1
    assert 19 in fake.confirmed_ids  # stored, so confirmed: never delivered (or answered) twice
    assert 20 not in fake.confirmed_ids  # not stored, so Telegram keeps it
    async with running(fake, db_path) as h:  # after a restart Telegram delivers it again and it is stored
        await fake.wait_confirmed([20])
        await h.settle()
        assert h.count("select count(*) from purchases where charge_id = 'stxSTOP'") == 1
        assert h.count("select count(*) from messages") == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1


async def test_an_unreachable_bot_api_at_start_is_retried_until_it_answers(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeBotApi()
    await fake.start()
    port = fake.port
    await fake.stop()  # nothing listens there for now
    late = FakeBotApi()
    late.port = port

    async def open_later() -> None:
        await logged(caplog, "Telegram Bot API unreachable at", count=2)
        await late.start(port)

    opener = asyncio.create_task(open_later())
    try:
        async with running(late, db_path, retry_wait=0.2) as h:
            await h.deliver(p.group_message(p.BOB, "hello", message_id=1) | {"update_id": 30})
            await h.eventually(lambda: h.count("select count(*) from messages") == 1, "the message stored")
    finally:
        await opener
        await late.stop()
    line = next(r.getMessage() for r in caplog.records if "Telegram Bot API unreachable at" in r.getMessage())
    assert line.startswith(f"Telegram Bot API unreachable at http://127.0.0.1:{port}/bot: ")
    assert line.endswith("; retrying in 0.2 s")
    assert late.token not in caplog.text


async def test_the_poller_ends_with_the_reason_when_the_token_is_revoked(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        (poller,) = h.adapter.supervised_tasks().values()
        fake.token = "999:revoked"  # revoked in @BotFather while the bot runs
        await fake.add_update(p.group_message(p.BOB, "hi", message_id=1))  # ends the current long poll
        await asyncio.wait_for(asyncio.gather(poller, return_exceptions=True), 15)
        error = poller.exception()
        assert error is not None and "no longer accepts the bot token" in str(error)


async def test_a_bot_api_answering_502_at_start_is_retried_but_a_403_stops_start(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake.fail("getMe", 502, "Bad Gateway", times=2)  # a proxy in front of the Bot API while it restarts
    async with running(fake, db_path, retry_wait=0.2) as h:
        await h.deliver(p.group_message(p.BOB, "hello", message_id=1) | {"update_id": 40})
    assert logged_count(caplog, "Telegram Bot API unreachable at") == 2
    fake.fail("getMe", 403, "Forbidden: not allowed through this proxy")
    with pytest.raises(AdapterStartError, match="refused getMe: Forbidden: not allowed through this proxy"):
        async with running(fake, db_path, retry_wait=0.2):
            pass


def logged_count(caplog: pytest.LogCaptureFixture, needle: str) -> int:
    return sum(needle in r.getMessage() for r in caplog.records)


async def test_an_update_failing_for_another_reason_is_skipped_after_5_tries_and_polling_goes_on(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def bug(*args: object) -> None:
        raise ValueError("a bug in handling this payment")

    monkeypatch.setattr("bot.core.sales.record_sale", bug)  # not the database: waiting cannot fix it
    payload = sign_payload(SECRET, "py-async", str(p.ALICE), PRICE)
    payment = p.successful_payment(p.ALICE, payload, PRICE, charge="stxBUG") | {"update_id": 50}
    async with running(fake, db_path, retry_wait=0.05) as h:
        await fake.add_update(payment)
        await fake.add_update(p.group_message(p.BOB, "after the bad one", message_id=1) | {"update_id": 51})
        await fake.wait_confirmed([50, 51])
        await h.eventually(lambda: h.count("select count(*) from messages") == 1, "the later message stored")
    assert logged_count(caplog, "storing Telegram update 50 failed (ValueError: a bug in handling") == 4
    [skipped] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped.startswith("Telegram update 50 failed 5 times (ValueError: a bug in handling this payment)")
    assert skipped.endswith("it was payment stxBUG: record it with /grant or refund it")


async def test_a_lock_taken_between_the_grant_and_its_record_still_sends_one_invite(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = sign_payload(SECRET, "py-async", str(p.ALICE), PRICE)
    payment = p.successful_payment(p.ALICE, payload, PRICE, charge="stxGAP") | {"update_id": 60}
    async with running(fake, db_path, busy_timeout_ms=100, retry_wait=0.2) as h:
        grant = h.adapter.grant_access
        held: list[object] = []

        async def grant_then_lock(*args: Any) -> Any:
            # A backup takes the write lock right after the invite link was made, before the bot notes the grant.
            result = await grant(*args)
            if not held:
                lock = write_locked(db_path)
                lock.__enter__()
                held.append(lock)
                asyncio.get_running_loop().call_later(0.5, lock.__exit__, None, None, None)
            return result

        h.adapter.grant_access = grant_then_lock  # type: ignore[method-assign]
        await fake.add_update(payment)
        await fake.wait_confirmed([60])
        await h.settle()
        assert held  # the lock really came between the two
        assert h.count("select count(*) from purchases where charge_id = 'stxGAP'") == 1
        assert h.count("select count(*) from purchases where access_granted_at is not null") == 1
    receipts = [c for c in fake.calls_to("sendMessage") if "fakeInvite" in c.params.get("text", "")]
    assert len(receipts) == 1 and to(p.ALICE)(receipts[0])  # the buyer gets one working link, not none


async def test_a_writer_that_dies_stops_serve_and_leaves_its_updates_to_telegram(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    settings = parse_settings(config(fake.base_url, db_path))
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    app = build_app(
        settings,
        secrets=Secrets(telegram_token=fake.token, signing_secret=SECRET),
        adapters=lambda deps: [TelegramAdapter(deps, flood_limits=FAST, poll_timeout=5)],
        engine=engine,
    )

    def bug(events: object) -> None:
        raise RuntimeError("a bug in the batch writer")

    monkeypatch.setattr(app.store, "write_batch", bug)  # the one failure the writer does not expect
    started = asyncio.Event()
    serving = asyncio.create_task(serve(app, started=started))
    await asyncio.wait_for(started.wait(), 20)
    await fake.add_update(p.group_message(p.BOB, "never stored", message_id=1) | {"update_id": 70})
    with pytest.raises(TaskDiedError, match="the event writer task ended unexpectedly: RuntimeError: a bug"):
        await asyncio.wait_for(serving, 20)
    assert 70 not in fake.confirmed_ids  # not stored, so not confirmed: Telegram delivers it after the restart
    assert logged_count(caplog, "Telegram adapter stopped") == 1  # the rest stopped in order
    assert logged_count(caplog, "failed to stop cleanly") == 0
