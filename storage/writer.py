"""The async event writer the bot, importers and benchmarks all use.

One worker task takes events from a queue and writes them in batches: a batch is flushed when it holds
``max_batch`` events (default 1,000) or ``flush_interval`` (default 250 ms) after its first event arrived,
whichever comes first. Under load (more events already queued when a batch is full) the batch keeps taking them,
up to ``max_batch_under_load`` (default 5,000): a transaction's cost is mostly per page, and consecutive events
share pages, so one big batch costs far less than several small ones, while light traffic keeps small batches
and the latency bound. All database work runs on one dedicated thread, so the event loop never blocks on
SQL and batches and ledger writes never interleave inside one connection.

Purchases and refunds bypass the batch: ``record_purchase`` returns only after the row is committed, so a
member is thanked (and given access) only for a sale that is on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from storage.deletion import DeletionReport, delete_admin_data, delete_member_data, find_member_id
from storage.engine import writing
from storage.errors import UnknownCommunityError
from storage.events import ActivityEvent, PurchaseEvent, ReactionEvent, RefundEvent
from storage.ingest import BatchResult, IngestStore
from storage.ledger import LedgerOutcome

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Flush:
    done: asyncio.Future[None]


_STOP = object()

LedgerKind = Literal["purchase", "refund"]
"""What :meth:`WriterObserver.ledger_committed` was told about."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What one commit of the writer touched, for its listeners (a cache refreshes only that part).

    Attributes:
        communities: The names of the communities whose data the commit may have changed.
        earliest: The earliest instant whose daily figures the commit may have changed; None when it may have
            changed any day (a removed reaction is taken off the day it was given, which its event does not carry).
        latest: The latest event instant of the commit; None with ``earliest``.
    """

    communities: frozenset[str]
    earliest: datetime | None
    latest: datetime | None

    @classmethod
    def of(cls, events: Sequence[ActivityEvent | PurchaseEvent | RefundEvent]) -> Commit:
        """The commit of ``events`` (a batch, or one purchase or refund)."""
        communities = frozenset(event.community for event in events)
        if any(isinstance(event, ReactionEvent) and not event.added for event in events):
            return cls(communities, None, None)
        instants = [event.occurred_at for event in events]
        return cls(communities, min(instants, default=None), max(instants, default=None))


class WriterObserver(Protocol):
    """Told what the writer committed, for counters (``bot/metrics.py`` implements it; storage never imports bot).

    Both methods run on the event loop right after the commit; they must be quick, and an error in one is logged,
    never raised into the writer.
    """

    def batch_committed(self, platform: str, result: BatchResult, seconds: float) -> None:
        """A batch of one platform's activity events was committed.

        Args:
            platform: The events' platform (``telegram``, ``discord``, ``console``...).
            result: What the batch changed, and how many of its events were already stored (duplicates).
            seconds: How long the database took to write the batch (the last, successful attempt).
        """
        ...

    def ledger_committed(self, kind: LedgerKind, platform: str, provider: str, created: bool) -> None:
        """A purchase or refund was committed (``created`` is False when it was already stored).

        Args:
            kind: ``purchase`` or ``refund``.
            platform: The platform it came through.
            provider: How it was paid (``telegram_stars``, ``stripe``...); empty for a refund.
            created: Whether this call stored it (False: a redelivery of one already stored).
        """
        ...


class WriterClosedError(RuntimeError):
    """Events were submitted after the writer stopped."""


class EventWriter:
    """Batches activity events into the database from a queue.

    Usage::

        writer = EventWriter(store)
        await writer.start()
        await writer.put(event)              # returns at once; stored within 250 ms
        await writer.record_purchase(sale)   # returns once committed
        await writer.stop()                  # flushes everything queued
    """

    def __init__(
        self,
        store: IngestStore,
        *,
        flush_interval: float = 0.25,
        max_batch: int = 1000,
        max_batch_under_load: int = 5000,
        max_queue: int = 100_000,
        retry_delay: float = 1.0,
        monotonic: Callable[[], float] | None = None,
        observer: WriterObserver | None = None,
    ) -> None:
        """Create a writer.

        Args:
            store: The synchronous store that does the SQL.
            flush_interval: Seconds after a batch's first event at which it is written.
            max_batch: Events at which a batch is written at once when no more are waiting.
            max_batch_under_load: Events at which a batch is written at once while more are waiting (a backlog);
                never below ``max_batch``.
            max_queue: Queue bound; ``put`` waits (back-pressure) when the database falls this far behind.
            retry_delay: First wait before retrying a batch the database refused to take (doubles up to 30 s).
            monotonic: The clock the flush timer reads, in seconds (default: the event loop's); tests inject one
                they move by hand, as the scheduler's tests do with its clock.
            observer: Told about every commit (the bot's metrics); none by default.
        """
        self.store = store
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_batch_under_load = max(max_batch, max_batch_under_load)
        self.retry_delay = retry_delay
        self._monotonic = monotonic
        self._queue: asyncio.Queue[object] = asyncio.Queue(max_queue)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohortbot-db")
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []  # flushes answered once the batch in hand is written
        self._closed = False
        self.totals = BatchResult()
        self.rejected = 0
        self._commit_listeners: list[Callable[[Commit], None]] = []
        self.observer = observer

    def add_commit_listener(self, listener: Callable[[Commit], None]) -> None:
        """Call ``listener`` on the event loop after every committed batch, purchase and refund, with what it touched.

        The dashboard's live figures and caches use it; a listener must be quick (it runs on the loop) and an error
        in it is logged, never raised into the writer.
        """
        self._commit_listeners.append(listener)

    def _committed(self, events: Sequence[ActivityEvent | PurchaseEvent | RefundEvent]) -> None:
        if not self._commit_listeners:
            return
        self._notify(Commit.of(events))

    def _notify(self, commit: Commit) -> None:
        for listener in list(self._commit_listeners):
            try:
                listener(commit)
            except Exception:
                log.exception("a commit listener failed")

    async def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cohortbot-writer")

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _check(self, event: ActivityEvent) -> None:
        if self._closed:
            raise WriterClosedError("the event writer is stopped")
        if self._task is not None and self._task.done():
            raise WriterClosedError("the event writer failed and is not running")
        if not self.store.is_registered(event.community):
            raise UnknownCommunityError(event.community)

    async def put(self, event: ActivityEvent) -> None:
        """Queue an activity event. Waits only when the queue is full.

        Raises:
            UnknownCommunityError: The event's community is not registered (nothing is queued).
            WriterClosedError: The writer was stopped.
        """
        self._check(event)
        await self._queue.put(event)

    def put_nowait(self, event: ActivityEvent) -> None:
        """Queue an activity event without waiting (raises ``asyncio.QueueFull`` when the queue is full)."""
        self._check(event)
        self._queue.put_nowait(event)

    def supervised_tasks(self) -> dict[str, asyncio.Task[None]]:
        """The worker task, for a supervisor: it only ends when ``stop`` is called, or on an unexpected error."""
        return {"event writer": self._task} if self._task is not None else {}

    @property
    def pending(self) -> int:
        """Events queued and not yet written."""
        return self._queue.qsize()

    async def flush(self) -> None:
        """Return once every event queued before this call is committed."""
        if self._task is None or self._task.done():
            raise WriterClosedError("the event writer is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Flush(done))
        await done

    async def stop(self) -> None:
        """Flush everything queued, then stop the worker. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None and not self._task.done():
            await self._queue.put(_STOP)
            await self._task
        self._executor.shutdown(wait=True)

    async def record_purchase(self, event: PurchaseEvent) -> LedgerOutcome:
        """Commit a purchase, then return. ``created`` is False when the charge was already stored.

        Raises:
            sqlalchemy.exc.DBAPIError: The database refused it (locked, disk full): nothing is stored; the caller
                retries (an adapter does not confirm the payment to the platform until it is stored).
        """
        outcome = await self._ledger(self.store.record_purchase, event)
        self._committed([event])
        self._observe_ledger("purchase", event.platform.value, event.source.value, outcome.created)
        log.info(
            "purchase %s %s of %r by %s:%s (%s)",
            "stored" if outcome.created else "already stored",
            event.charge_id,
            event.course_id,
            event.platform.value,
            event.member.user_id,
            event.source.value,
        )
        return outcome

    async def record_refund(self, event: RefundEvent) -> LedgerOutcome:
        """Commit a refund, then return. ``created`` is False when it was already refunded."""
        outcome = await self._ledger(self.store.record_refund, event)
        self._committed([event])
        self._observe_ledger("refund", event.platform.value, "", outcome.created)
        return outcome

    def _observe_ledger(self, kind: LedgerKind, platform: str, provider: str, created: bool) -> None:
        if self.observer is None:
            return
        try:
            self.observer.ledger_committed(kind, platform, provider, created)
        except Exception:
            log.exception("the writer's observer failed")

    def _observe_batch(self, platform: str, result: BatchResult, seconds: float) -> None:
        if self.observer is None:
            return
        try:
            self.observer.batch_committed(platform, result, seconds)
        except Exception:
            log.exception("the writer's observer failed")

    async def _ledger(self, write: Callable[[T], LedgerOutcome], event: T) -> LedgerOutcome:
        try:
            return await self._db(write, event)
        except DBAPIError:
            # The transaction was rolled back: ids it cached (a new member) were never committed.
            self.store.invalidate_caches()
            raise

    async def forget_member(self, community: str, platform: str, user_id: str) -> DeletionReport | None:
        """Flush, then delete everything stored about one member (see ``storage.deletion``).

        Returns:
            What was deleted, or None when nothing was stored about that account.
        """
        if self._task is not None and not self._task.done():
            await self.flush()
        report = await self._db(self._forget, community, platform, user_id)
        if report is not None:
            # Any day of that member may have changed: listeners that refresh part of their figures refresh all.
            self._notify(Commit(frozenset({community}), None, None))
        return report

    def _forget(self, community: str, platform: str, user_id: str) -> DeletionReport | None:
        community_id = self.store.community_id(community)
        with writing(self.store.engine).begin() as conn:
            member_id = find_member_id(conn, community_id, platform, user_id)
            if member_id is None:
                # An admin who never posted has no member row but may have dashboard logins and sessions.
                deleted = delete_admin_data(conn, community_id, platform, user_id)
                return DeletionReport(0, deleted, {}) if deleted else None
            report = delete_member_data(conn, member_id)
        self.store.invalidate_caches()
        return report

    async def _run(self) -> None:
        try:
            await self._work()
        except BaseException as exc:
            # Nobody would ever answer a flush waiting in the queue: fail them, so that callers (an adapter
            # storing an update, ``stop``) see the error instead of hanging, and the supervisor sees the task end.
            self._fail_waiters(exc)
            raise

    def _fail_waiters(self, exc: BaseException) -> None:
        lost = 0
        waiters = list(self._waiters)
        self._waiters.clear()
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if isinstance(item, _Flush):
                waiters.append(item.done)
            elif item is not _STOP:
                lost += 1
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(WriterClosedError(f"the event writer failed: {exc!r}"))
        if lost:
            log.error("the event writer failed: %d queued events were not written (%r)", lost, exc)

    async def _work(self) -> None:
        now = self._monotonic or asyncio.get_running_loop().time
        queue = self._queue
        stopping = False
        cap = self.max_batch_under_load
        while not stopping:
            item = await queue.get()
            batch: list[ActivityEvent] = []
            waiters = self._waiters
            deadline = now() + self.flush_interval
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, _Flush):
                    waiters.append(item.done)
                    break
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= cap:
                    break
                # Drain without awaiting while events are there (the hot path under load; past ``max_batch`` only
                # while a backlog lasts) ...
                try:
                    item = queue.get_nowait()
                    continue
                except asyncio.QueueEmpty:
                    pass
                if len(batch) >= self.max_batch:
                    break
                # ... and only wait, with the deadline, when the queue ran dry.
                timeout = deadline - now()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    break
            # One transaction per platform (almost always the only one): what each stored is then known exactly,
            # for the counters by platform; storage is idempotent, so a retry of one part never doubles the other.
            for part in _by_platform(batch):
                await self._write_with_retries(part)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            waiters.clear()

    async def _write_with_retries(self, batch: Sequence[ActivityEvent]) -> None:
        delay = self.retry_delay
        attempt = 0
        while True:
            attempt += 1
            try:
                started = time.perf_counter()
                result = await self._db(self.store.write_batch, batch)
                self.totals = self.totals + result
                self._committed(batch)
                self._observe_batch(batch[0].platform.value, result, time.perf_counter() - started)
                return
            except OperationalError as exc:
                # The database is unreachable or locked: keep the events and wait; put() applies back-pressure.
                log.error("database unavailable, retrying a batch of %d events in %.1fs: %s", len(batch), delay, exc)
                self.store.invalidate_caches()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except (IntegrityError, DBAPIError) as exc:
                # Usually stale cached ids (a member deleted by another process): retry once with cold caches,
                # then isolate the events the database refuses so that one bad event cannot block the rest.
                self.store.invalidate_caches()
                if attempt == 1:
                    continue
                log.error("a batch of %d events was refused (%s); writing them one by one", len(batch), exc)
                await self._write_one_by_one(batch)
                return

    async def _write_one_by_one(self, batch: Sequence[ActivityEvent]) -> None:
        try:
            await self._write_each(batch)
        finally:
            self._committed(batch)

    async def _write_each(self, batch: Sequence[ActivityEvent]) -> None:
        for event in batch:
            try:
                started = time.perf_counter()
                result = await self._db(self.store.write_batch, [event])
                self.totals = self.totals + result
                self._observe_batch(event.platform.value, result, time.perf_counter() - started)
            except DBAPIError as exc:
                self.rejected += 1
                self.store.invalidate_caches()
                log.error("event refused by the database and not stored: %r: %s", event, exc)


def _by_platform(batch: Sequence[ActivityEvent]) -> list[Sequence[ActivityEvent]]:
    """The batch split by platform, in order of first appearance (the batch itself when it has one platform)."""
    if not batch:
        return []
    first = batch[0].platform
    if all(event.platform is first for event in batch):
        return [batch]
    parts: dict[object, list[ActivityEvent]] = {}
    for event in batch:
        parts.setdefault(event.platform, []).append(event)
    return list(parts.values())
