"""What the core and the adapters count, as a port: ``bot/metrics.py`` turns it into Prometheus metrics.

The dispatcher, the scheduler and the adapters are handed a :class:`Telemetry` by ``bot/app.py``; tests and
one-shot commands that build them without one get a :class:`NoTelemetry`, which counts nothing. Labels are names the
code chooses (a command's name from the command set, a job's name, a platform): never text a member typed.
"""

from __future__ import annotations

from typing import Literal, Protocol

DmKind = Literal["nudge", "survey"]


class Telemetry(Protocol):
    """Counters the running bot keeps (``/metrics``)."""

    def command_answered(self, command: str, seconds: float) -> None:
        """A known command (by its name in the command set) was answered after ``seconds``."""
        ...

    def job_finished(self, job: str, outcome: str) -> None:
        """A scheduled job run ended with ``outcome`` (``ok``, ``skipped``, ``failed``)."""
        ...

    def dms_sent(self, kind: DmKind, sent: int, rate_limited: int) -> None:
        """A run sent ``sent`` direct messages and held back ``rate_limited`` over the daily DM budget."""
        ...

    def reconnected(self, platform: str) -> None:
        """A platform connection was lost and came back (a gateway resume, polling working again)."""
        ...


class NoTelemetry:
    """Counts nothing (the default when no metrics are wired)."""

    def command_answered(self, command: str, seconds: float) -> None:
        """Ignored."""

    def job_finished(self, job: str, outcome: str) -> None:
        """Ignored."""

    def dms_sent(self, kind: DmKind, sent: int, rate_limited: int) -> None:
        """Ignored."""

    def reconnected(self, platform: str) -> None:
        """Ignored."""
