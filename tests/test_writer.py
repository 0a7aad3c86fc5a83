"""The async writer: batching by size and time, graceful stop, ledger commits, and crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from bot.metrics import Metrics
from storage.catalog import CourseRecord, sync_courses
from storage.errors import UnknownCommunityError
from storage.events import ActivityEvent, Platform, RefundEvent
from storage.ingest import BatchResult, IngestStore
from storage.models import Member, Message, Purchase
from storage.writer import EventWriter, WriterClosedError
from tests.conftest import COMMUNITY, T0, Events, hours

pytestmark = pytest.mark.storage
ROOT = Path(__file__).resolve().parents[1]


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


async def eventually(check: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll until check() holds (behaviour, not speed: the timeout is generous)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return bool(await asyncio.to_thread(check))


async def test_events_are_written_without_anyone_asking(store: IngestStore, ev: Events) -> None:
    writer = EventWriter(store)  # the 250 ms timer writes a small batch on its own
    await writer.start()
    for i in range(5):
        await writer.put(ev.message("alice", at=T0 + hours(i)))
    assert await eventually(lambda: count(store.engine, Message) == 5)
    await writer.stop()


class HandClock:
    """The writer's flush timer clock, moved by hand; it counts reads so a test knows when the worker waits."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.seconds


def batch_sizes(store: IngestStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the writer hands the (real) store, in order."""
    sizes: list[int] = []
    write_batch = store.write_batch

    def recording(events: Sequence[ActivityEvent]) -> BatchResult:
        sizes.append(len(events))
        return write_batch(events)

    monkeypatch.setattr(store, "write_batch", recording)
    return sizes


async def test_a_full_batch_is_written_before_the_timer(
    store: IngestStore, ev: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = batch_sizes(store, monkeypatch)
    clock = HandClock()
    writer = EventWriter(store, flush_interval=3600, max_batch=100, monotonic=clock)
    await writer.start()
    for i in range(99):
        await writer.put(ev.message("alice", at=T0 + hours(i)))
    # The worker read the clock twice: the batch's deadline, then the time left once the queue ran dry. It now
    # waits for more: one short of a batch, and the timer an hour away on a clock that does not move.
    assert await eventually(lambda: clock.reads == 2)
    await writer.put(ev.message("bob"))
    assert await eventually(lambda: count(store.engine, Message) == 100)
    assert sizes == [100]  # one batch when it was full: the 99 were not written on their own
    await writer.stop()


async def test_the_timer_writes_a_short_batch_once_its_clock_passes_the_deadline(
    store: IngestStore, ev: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = batch_sizes(store, monkeypatch)
    clock = HandClock()
    writer = EventWriter(store, flush_interval=3600, max_batch=100, monotonic=clock)
    await writer.start()
    for i in range(5):
        await writer.put(ev.message("alice", at=T0 + hours(i)))
    assert await eventually(lambda: clock.reads == 2)  # waiting, with the deadline an hour away
    clock.seconds = 3600  # the hour has passed; the next event finds the batch due
    await writer.put(ev.message("bob"))
    assert await eventually(lambda: count(store.engine, Message) == 6)
    assert sizes == [6]  # written at the deadline, far short of a full batch
    await writer.stop()


async def test_a_backlog_is_written_in_bigger_batches_and_light_traffic_in_small_ones(
    store: IngestStore, ev: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = batch_sizes(store, monkeypatch)
    writer = EventWriter(store, flush_interval=3600, max_batch=100, max_batch_under_load=1000)
    for i in range(2500):  # queued before the worker runs: a backlog
        writer.put_nowait(ev.message(f"u{i % 40}", at=T0 + hours(i / 100)))
    await writer.start()
    await writer.flush()
    assert sizes == [1000, 1000, 500]
    for i in range(100):  # then one event at a time, each waited for: the batch is written once it holds 100
        await writer.put(ev.message("alice", at=T0 + hours(100 + i)))
        await asyncio.sleep(0)
    assert await eventually(lambda: count(store.engine, Message) == 2600)
    assert sizes == [1000, 1000, 500, 100]
    await writer.stop()


async def test_stop_flushes_everything_queued(store: IngestStore, ev: Events) -> None:
    writer = EventWriter(store, flush_interval=3600, max_batch=10**6)
    await writer.start()
    for i in range(2500):
        writer.put_nowait(ev.message(f"u{i % 40}", at=T0 + hours(i / 100)))
    await writer.stop()
    assert count(store.engine, Message) == 2500
    assert writer.totals.messages == 2500
    with pytest.raises(WriterClosedError):
        await writer.put(ev.message("late"))


async def test_flush_returns_once_everything_before_it_is_stored(store: IngestStore, ev: Events) -> None:
    writer = EventWriter(store, flush_interval=3600)
    await writer.start()
    await writer.put(ev.message("alice"))
    await writer.flush()
    assert count(store.engine, Message) == 1
    await writer.stop()


async def test_a_worker_that_dies_fails_waiting_flushes_instead_of_hanging(
    store: IngestStore, ev: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(events: object) -> None:
        raise RuntimeError("a bug in the batch writer")

    monkeypatch.setattr(store, "write_batch", bug)  # the one kind of failure the writer does not expect
    writer = EventWriter(store, flush_interval=3600)
    await writer.start()
    (worker,) = writer.supervised_tasks().values()
    await writer.put(ev.message("alice"))
    with pytest.raises(WriterClosedError, match="a bug in the batch writer"):
        await asyncio.wait_for(writer.flush(), 10)  # an adapter waiting to confirm an update learns of it
    assert worker.done() and isinstance(worker.exception(), RuntimeError)  # what a supervisor sees
    with pytest.raises(WriterClosedError, match="failed"):
        await writer.put(ev.message("bob"))  # nothing more is queued for a worker that is gone
    await asyncio.wait_for(writer.stop(), 10)


async def test_unknown_community_is_refused_at_the_door(store: IngestStore) -> None:
    writer = EventWriter(store)
    await writer.start()
    with pytest.raises(UnknownCommunityError):
        await writer.put(Events(community="elsewhere").message("alice"))
    assert writer.pending == 0
    await writer.stop()


async def test_purchase_is_committed_before_the_caller_hears_of_it(store: IngestStore, ev: Events) -> None:
    sync_courses(store.engine, store.community_id(COMMUNITY), [CourseRecord("py-async", "Async Python", 500)])
    writer = EventWriter(store, flush_interval=3600)
    await writer.start()
    outcome = await writer.record_purchase(ev.purchase("alice", charge="c-1"))
    # Another connection sees it at once: no batch, no timer.
    assert outcome.created and count(store.engine, Purchase) == 1
    again = await writer.record_purchase(ev.purchase("alice", charge="c-1"))
    assert not again.created and count(store.engine, Purchase) == 1
    refund = await writer.record_refund(RefundEvent(ev.platform, COMMUNITY, "c-1", T0 + hours(1)))
    assert refund.created
    await writer.stop()


async def test_forget_flushes_first_so_queued_events_cannot_bring_a_member_back(store: IngestStore, ev: Events) -> None:
    writer = EventWriter(store, flush_interval=3600)
    await writer.start()
    await writer.put(ev.message("alice"))
    await writer.put(ev.message("bob"))
    report = await writer.forget_member(COMMUNITY, "discord", "alice")
    assert report is not None and report.deleted["messages"] == 1
    await writer.flush()
    with store.engine.connect() as conn:
        assert conn.execute(select(Member.platform_user_id)).scalars().all() == ["bob"]
    assert await writer.forget_member(COMMUNITY, "discord", "nobody") is None
    # Later messages of a forgotten member are stored again: they are new activity.
    await writer.put(ev.message("alice"))
    await writer.stop()
    assert count(store.engine, Message) == 2


def _start(db_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.writer_process", db_url, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_loses_no_purchase_that_was_reported_stored(engine: Engine, db_url: str) -> None:
    proc = _start(db_url, "purchases")
    assert proc.stdout is not None
    reported = []
    for line in proc.stdout:
        reported.append(line.split()[1])
        if len(reported) == 40:
            break
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: activity batches and sales in flight
    proc.wait(timeout=30)
    assert len(reported) == 40, proc.stderr.read() if proc.stderr else ""
    with engine.connect() as conn:
        stored = set(conn.execute(select(Purchase.charge_id)).scalars())
    assert set(reported) <= stored


@pytest.mark.slow
def test_sigterm_writes_every_queued_event_before_exit(engine: Engine, db_url: str) -> None:
    proc = _start(db_url, "queue-and-wait", "3000")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "queued 3000", proc.stderr.read() if proc.stderr else ""
    assert count(engine, Message) == 0  # nothing written yet: the writer is holding them
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert count(engine, Message) == 3000


async def test_metrics_count_what_each_platform_stored_duplicates_and_new_payments(
    store: IngestStore, ev: Events
) -> None:
    # The bot's metrics as the writer's observer: what /metrics shows an operator after a mixed, replayed batch.
    metrics = Metrics()
    sync_courses(store.engine, store.community_id(COMMUNITY), [CourseRecord("py-async", "Async Python", 500)])
    writer = EventWriter(store, flush_interval=3600, observer=metrics)
    metrics.watch_queue(lambda: writer.pending)
    tg = Events(Platform.TELEGRAM)
    await writer.start()
    first = ev.message("alice", at=T0, message_id="m1")
    for event in (first, tg.message("bob", at=T0, message_id="t1"), tg.join("carol"), first):
        await writer.put(event)
    assert value(metrics, "cohortbot_writer_queue_depth") == 4
    await writer.flush()
    assert value(metrics, "cohortbot_writer_queue_depth") == 0
    assert value(metrics, "cohortbot_events_stored_total", type="message", platform="discord") == 1
    assert value(metrics, "cohortbot_events_stored_total", type="message", platform="telegram") == 1
    assert value(metrics, "cohortbot_events_stored_total", type="join", platform="telegram") == 1
    assert value(metrics, "cohortbot_events_duplicate_total", platform="discord") == 1
    # One transaction per platform in the mixed batch, so two timed writes.
    assert value(metrics, "cohortbot_writer_batch_seconds_count") == 2

    await writer.put(ev.message("alice", at=T0, message_id="m1"))  # Discord delivers it again after a resume
    await writer.flush()
    assert value(metrics, "cohortbot_events_duplicate_total", platform="discord") == 2
    assert value(metrics, "cohortbot_events_stored_total", type="message", platform="discord") == 1

    await writer.record_purchase(ev.purchase("alice", charge="c-1"))
    await writer.record_purchase(ev.purchase("alice", charge="c-1"))  # redelivered: stored once, counted once
    await writer.record_refund(RefundEvent(ev.platform, COMMUNITY, "c-1", T0 + hours(1)))
    provider = ev.purchase("alice", charge="c-1").source.value
    assert value(metrics, "cohortbot_payments_total", platform="discord", provider=provider) == 1
    assert value(metrics, "cohortbot_refunds_total", platform="discord") == 1
    await writer.stop()


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)
