"""The contract every platform adapter fills in, and what ``bot/app.py`` hands each adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.clock import Clock
    from bot.config import CourseSettings, Secrets, Settings
    from bot.core.dispatcher import Dispatcher
    from bot.core.replies import OutgoingMessage
    from storage.writer import EventWriter


@dataclass(frozen=True, slots=True)
class AdapterDeps:
    """The wired parts an adapter is built from (no globals: everything it uses comes through here).

    Attributes:
        settings: The configuration (the adapter reads its own section and the courses).
        secrets: Tokens and the signing secret; never log them.
        writer: Where activity events go (``put``) and where purchases/refunds are committed.
        dispatcher: Runs commands; the adapter translates the platform's command into a ``CommandInvocation``.
        clock: The current time (for events the platform sends without a timestamp).
        engine: The database, for the few adapter-side reads (e.g. who owns which course during reconciliation).
    """

    settings: Settings
    secrets: Secrets
    writer: EventWriter
    dispatcher: Dispatcher
    clock: Clock
    engine: Engine


class Adapter(Protocol):
    """A platform connection: translates payloads into events and sends what the core says.

    ``bot/app.py`` constructs adapters from :class:`AdapterDeps` and calls ``start``/``stop`` on the shared event
    loop; an adapter never runs its own loop or blocks in ``start``.
    """

    name: str

    async def start(self) -> None:
        """Connect and begin delivering events. Returns once connected."""
        ...

    async def stop(self) -> None:
        """Stop receiving, finish in-flight work (every delivered event handed to the writer), and disconnect."""
        ...

    async def send(self, message: OutgoingMessage) -> None:
        """Send a message the bot starts (digest, nudge, receipt), waiting out rate limits.

        Raises:
            DeliveryError: The platform refused for good (the user blocked the bot, the channel is gone).
        """
        ...


class DeliveryError(Exception):
    """A message could not be delivered and retrying will not help; ``reason`` says why (shown to admins)."""

    def __init__(self, reason: str, *, unreachable_user: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable_user = unreachable_user


class AdapterStartError(Exception):
    """An adapter cannot start (bad token, refused intent, unreachable API); the message says what to fix."""


@dataclass(frozen=True, slots=True)
class AccessFix:
    """The outcome of making one member's course access match their purchases.

    Attributes:
        changed: The bot changed something (gave or took a role, removed someone from a course chat).
        problem: What the bot could not fix and an admin should (listed in the digest).
    """

    changed: bool
    problem: str | None = None


@runtime_checkable
class AccessReconciler(Protocol):
    """Implemented by adapters whose platform controls course access (the daily reconciliation uses it)."""

    name: str

    async def access_holders(self, course: CourseSettings) -> frozenset[str] | None:
        """Every user id that has the course's access now, when the platform can list them; None otherwise."""
        ...

    async def ensure_access(self, user_id: str, course: CourseSettings, *, should_have: bool) -> AccessFix:
        """Give or take the course's access so that it matches ``should_have``; a no-op when it already does."""
        ...
