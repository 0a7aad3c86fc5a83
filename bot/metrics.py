"""The running bot's Prometheus metrics: one registry per app, filled by the parts that count.

``bot/app.py`` builds one :class:`Metrics` per :class:`~bot.app.App` and hands it to the writer (as its
:class:`~storage.writer.WriterObserver`), the dispatcher, the scheduler and the adapters (as their
:class:`~bot.core.telemetry.Telemetry`); ``/metrics`` renders :attr:`Metrics.registry`. The registry is never
prometheus_client's global one: two apps in one process (tests) keep their own figures, and nothing a library
registers globally leaks into ours.

Every name starts with ``cohortbot_``; docs/operations.md lists them with their labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bot.core.telemetry import DmKind
from storage.ingest import BatchResult
from storage.writer import LedgerKind

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`Metrics.render` (the Prometheus text format, as prometheus_client names it)."""

# Batch writes take milliseconds on SQLite and tens of milliseconds on a remote PostgreSQL; a batch over a few
# seconds means the database is struggling.
_BATCH_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Commands answer from cached figures in milliseconds, or compute a report in up to a few seconds.
_COMMAND_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The bot's counters, gauges and histograms in a registry of their own.

    Usage::

        metrics = Metrics()
        writer = EventWriter(store, observer=metrics)
        metrics.watch_queue(lambda: writer.pending)
        body = metrics.render()        # what GET /metrics answers
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the metrics in ``registry`` (a new one by default, never the global one)."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_stored = Counter(
            "cohortbot_events_stored",
            "Activity events stored (new rows), by type and platform.",
            ("type", "platform"),
            registry=r,
        )
        self.duplicates = Counter(
            "cohortbot_events_duplicate",
            "Activity events dropped because they were already stored (redeliveries, replays), by platform.",
            ("platform",),
            registry=r,
        )
        self.queue_depth = Gauge(
            "cohortbot_writer_queue_depth", "Events queued in the writer and not yet written.", registry=r
        )
        self.batch_seconds = Histogram(
            "cohortbot_writer_batch_seconds",
            "Time the database took to write one batch of events.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.command_seconds = Histogram(
            "cohortbot_command_seconds",
            "Time to answer a command, by command name.",
            ("command",),
            buckets=_COMMAND_BUCKETS,
            registry=r,
        )
        self.job_runs = Counter(
            "cohortbot_job_runs", "Scheduled job runs, by job and outcome.", ("job", "outcome"), registry=r
        )
        self.dms_sent_total = Counter(
            "cohortbot_dms_sent", "Direct messages sent by the nudge and survey jobs.", ("kind",), registry=r
        )
        self.dms_rate_limited = Counter(
            "cohortbot_dms_rate_limited",
            "Direct messages held back for a later run by the daily DM budget ([nudges] max_per_day, max_per_run).",
            ("kind",),
            registry=r,
        )
        self.payments = Counter(
            "cohortbot_payments",
            "Payments stored (redeliveries not counted), by platform and provider.",
            ("platform", "provider"),
            registry=r,
        )
        self.refunds = Counter(
            "cohortbot_refunds", "Refunds stored (redeliveries not counted), by platform.", ("platform",), registry=r
        )
        self.reconnects = Counter(
            "cohortbot_platform_reconnects",
            "Times a platform connection was lost and came back, by platform.",
            ("platform",),
            registry=r,
        )

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the writer's queue depth at each scrape (a gauge set on every put would cost the hot path)."""
        self.queue_depth.set_function(lambda: float(depth()))

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    # --- storage.writer.WriterObserver ----------------------------------------------------------------------

    def batch_committed(self, platform: str, result: BatchResult, seconds: float) -> None:
        """Count what a committed batch stored and how long it took."""
        self.batch_seconds.observe(seconds)
        for kind, count in (
            ("message", result.messages),
            ("reaction_added", result.reactions_added),
            ("reaction_removed", result.reactions_removed),
            ("join", result.joins),
            ("leave", result.leaves),
        ):
            if count:
                self.events_stored.labels(type=kind, platform=platform).inc(count)
        if result.duplicates:
            self.duplicates.labels(platform=platform).inc(result.duplicates)

    def ledger_committed(self, kind: LedgerKind, platform: str, provider: str, created: bool) -> None:
        """Count a newly stored payment or refund."""
        if not created:
            return
        if kind == "purchase":
            self.payments.labels(platform=platform, provider=provider).inc()
        else:
            self.refunds.labels(platform=platform).inc()

    # --- bot.core.telemetry.Telemetry -----------------------------------------------------------------------

    def command_answered(self, command: str, seconds: float) -> None:
        """Observe a command's answer time under its name."""
        self.command_seconds.labels(command=command).observe(seconds)

    def job_finished(self, job: str, outcome: str) -> None:
        """Count a job run by outcome."""
        self.job_runs.labels(job=job, outcome=outcome).inc()

    def dms_sent(self, kind: DmKind, sent: int, rate_limited: int) -> None:
        """Count what a nudge or survey run sent and held back."""
        # Touching the children makes both series appear at 0 after the first run, so a rate() has a baseline.
        self.dms_sent_total.labels(kind=kind).inc(sent)
        self.dms_rate_limited.labels(kind=kind).inc(rate_limited)

    def reconnected(self, platform: str) -> None:
        """Count a reconnect."""
        self.reconnects.labels(platform=platform).inc()
