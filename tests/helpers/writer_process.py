"""A cohortbot process for crash and shutdown tests, driven by tests/test_writer_process.py.

usage: python -m tests.helpers.writer_process DB_URL purchases|queue-and-wait N
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from bot.app import build_app, serve
from bot.config import parse_settings
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform, PurchaseEvent, PurchaseSource
from storage.writer import EventWriter

COMMUNITY = "testers"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def message(i: int) -> MessageEvent:
    return MessageEvent(
        platform=Platform.TELEGRAM,
        community=COMMUNITY,
        message_id=str(i),
        channel=ChannelRef("-100777"),
        author=MemberRef(f"user{i % 50}"),
        occurred_at=T0 + timedelta(seconds=i),
        length=20,
    )


async def purchases(url: str) -> None:
    """Sell courses as fast as possible while chatting; report each sale the writer says is stored."""
    settings = parse_settings(
        {
            "community": {"name": COMMUNITY},
            "storage": {"url": url},
            "courses": [{"id": "py-async", "title": "Async Python", "price_stars": 500}],
        }
    )
    app = build_app(settings)
    await app.start()
    i = 0
    while True:
        for j in range(20):
            await app.writer.put(message(i * 20 + j))
        sale = PurchaseEvent(
            platform=Platform.TELEGRAM,
            community=COMMUNITY,
            charge_id=f"charge-{i}",
            member=MemberRef(f"user{i % 50}"),
            course_id="py-async",
            amount=500,
            currency="XTR",
            occurred_at=T0 + timedelta(seconds=i),
            source=PurchaseSource.TELEGRAM_STARS,
        )
        outcome = await app.writer.record_purchase(sale)
        print(f"stored {sale.charge_id} {outcome.created}", flush=True)
        i += 1


async def queue_and_wait(url: str, n: int) -> None:
    """Queue n events that only a graceful shutdown will write, then run until SIGTERM."""
    settings = parse_settings({"community": {"name": COMMUNITY}, "storage": {"url": url}})
    app = build_app(settings)
    # Never flush on size or time: only shutdown can write these.
    app.writer = EventWriter(app.store, flush_interval=3600, max_batch=10**9)
    started = asyncio.Event()
    server = asyncio.create_task(serve(app, started=started))
    await started.wait()
    for i in range(n):
        await app.writer.put(message(i))
    await asyncio.sleep(0.2)  # let the worker take them off the queue into its open batch
    print(f"queued {n}", flush=True)
    await server


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    if mode == "purchases":
        asyncio.run(purchases(url))
    else:
        asyncio.run(queue_and_wait(url, int(sys.argv[3])))


if __name__ == "__main__":
    main()
