"""The ports: everything a platform must provide to plug into the bot, in one file.

A new platform (say Slack) lives in its own package under ``bot/adapters/<platform>/`` — the only place its
client library is imported — and provides:

- an :class:`Adapter`: built by ``bot/app.py`` from :class:`AdapterDeps`; ``start``/``stop`` on the shared event
  loop; translates platform payloads into the events of ``storage/events.py`` and hands activity to
  ``deps.writer``, commands (as ``CommandInvocation``) to ``deps.dispatcher``; ``send`` delivers what the core
  starts (digests, nudges, receipts) and raises :class:`DeliveryError` when retrying cannot help;
  :class:`AdapterStartError` when it cannot start (bad token, unreachable API) with what to fix;
- :class:`PlatformActions`: what a command may ask of the platform it came from (grant/revoke course access,
  refund a platform payment), answering with :class:`AccessResult`, or :class:`CapabilityError` when the
  platform cannot do it;
- optionally an :class:`AccessReconciler`, when the platform controls course access (roles, course chats), so
  the daily reconciliation can list holders and fix each one (:class:`AccessFix`);
- optionally :class:`SubscriptionActions`, when members can cancel a subscription through the bot (Telegram
  Stars subscriptions; Discord members cancel in Discord's own settings);
- optionally :class:`SurveyActions`, when ``/survey`` can post in the channel it was run in: a question with
  buttons, and a native non-anonymous poll whose votes the adapter hands to ``bot.core.surveys.receive_poll_vote``.

Sale alerts (``[sales] alert_chat`` / ``alert_channel``) go out through :meth:`Adapter.send` of the platform the
alert target is on, whichever platform the sale came from (see ``bot.core.alerts``).

The core (``bot/core``, ``bot/scheduler.py``, ``bot/app.py``) depends only on these ports, never on
``bot.adapters``; adapters implement them and keep only what they share (``bot/adapters/retry.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.core.telemetry import NoTelemetry, Telemetry

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.clock import Clock
    from bot.config import CourseSettings, Secrets, Settings
    from bot.core.dispatcher import Dispatcher
    from bot.core.replies import OutgoingMessage, Reply
    from storage.events import ChannelRef, MemberRef, Platform
    from storage.writer import EventWriter


WebhookHandler = Callable[[Any], Awaitable[Any]]
"""An aiohttp request handler (``web.Request`` in, ``web.Response`` out); typed loosely so the core needs no aiohttp."""


class WebhookRoutes:
    """POST paths an adapter serves on the one web server (the Telegram webhook) when the dashboard runs in-process.

    The web server's routes are fixed once it listens, so it routes every such POST through this table, which an
    adapter fills when it starts and empties when it stops. Requests to these paths need no dashboard login: the
    adapter checks its own secret.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, WebhookHandler] = {}

    def add(self, path: str, handler: WebhookHandler) -> None:
        """Serve POSTs to ``path`` with ``handler``."""
        self._handlers[path] = handler

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (later POSTs get 404)."""
        self._handlers.pop(path, None)

    def handler(self, path: str) -> WebhookHandler | None:
        """The handler of ``path``, if one is registered."""
        return self._handlers.get(path)


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
        webhooks: With ``[dashboard] enabled``, where a webhook is served on the one web server (``[web] port``)
            instead of a listener of its own; None otherwise.
        telemetry: Where the adapter counts reconnects (``/metrics``); counts nothing by default.
    """

    settings: Settings
    secrets: Secrets
    writer: EventWriter
    dispatcher: Dispatcher
    clock: Clock
    engine: Engine
    webhooks: WebhookRoutes | None = None
    telemetry: Telemetry = field(default_factory=NoTelemetry)


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


@runtime_checkable
class ConnectionStatus(Protocol):
    """A cheap view of whether the platform connection is alive, for ``/healthz`` (``App.health_problems``)."""

    def connection_problem(self) -> str | None:
        """What is wrong with the connection in one line ("the Discord gateway is not connected"); None when alive.

        Must not do I/O: it answers from state the adapter already keeps (a health check runs every few seconds).
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


@runtime_checkable
class LeaderDuties(Protocol):
    """Implemented by adapters with work only one of several processes may do (Telegram's getUpdates polling).

    With several processes on PostgreSQL the app calls ``defer_leader_duties`` before ``start``: the adapter then
    starts without those duties, takes them up on ``lead`` (this process became the leader) and drops them on
    ``follow`` (it lost the leader lock). Alone on SQLite, the adapter does them from ``start`` as before.
    """

    def defer_leader_duties(self) -> None:
        """Start without the leader's duties; wait for ``lead``."""
        ...

    async def lead(self) -> None:
        """Take the leader's duties up (idempotent)."""
        ...

    async def follow(self) -> None:
        """Drop the leader's duties at once (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class AccessResult:
    """What happened when the bot tried to give or take course access.

    Attributes:
        ok: Access is now as intended.
        detail: For the member (an invite link) or the admin (what was done).
        problem: When not ok: what an admin must fix (e.g. "give the bot the Manage Roles permission").
    """

    ok: bool
    detail: str = ""
    problem: str | None = None


class CapabilityError(Exception):
    """The platform cannot do what was asked (e.g. refund a Discord purchase from the bot); say so, never skip."""


@runtime_checkable
class SubscriptionActions(Protocol):
    """Implemented by platform actions that can cancel or resume a member's subscription (Telegram)."""

    async def set_subscription_cancelled(self, member: MemberRef, subscription_ref: str, *, cancelled: bool) -> None:
        """Stop (``cancelled``) or resume the renewals of a subscription; access lasts until the paid period ends.

        Raises:
            CapabilityError: The platform refused (the subscription is unknown to it, or already ended).
        """
        ...


@dataclass(frozen=True, slots=True)
class PostedSurvey:
    """Where a survey went up: the platform's message id and, for a native poll, the id its votes will name.

    Attributes:
        message_id: The posted message.
        poll_id: Telegram's poll id (``poll_answer`` updates name it); Discord's votes name the message, so the
            message id.
    """

    message_id: str
    poll_id: str | None = None


@runtime_checkable
class SurveyActions(Protocol):
    """Implemented by platform actions that can post a survey where ``/survey`` was run (Telegram, Discord)."""

    async def post_survey(self, channel: ChannelRef, reply: Reply) -> PostedSurvey:
        """Post ``reply`` (a question with answer buttons) publicly in ``channel``.

        Raises:
            DeliveryError: The bot may not post there.
        """
        ...

    async def post_poll(self, channel: ChannelRef, question: str, options: tuple[str, ...]) -> PostedSurvey:
        """Post a native, non-anonymous single-choice poll in ``channel``, so each vote names its member.

        Raises:
            DeliveryError: The bot may not post there, or the platform refused the poll.
        """
        ...


@runtime_checkable
class PlatformActions(Protocol):
    """What a command may ask of the platform it came from. Implemented by each adapter."""

    platform: Platform

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Give ``member`` access to ``course`` (Telegram: one-time invite link sent by DM; Discord: the role)."""
        ...

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Take access to ``course`` away (Telegram: remove from the course chat; Discord: remove the role)."""
        ...

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Return the money of a platform payment (Telegram: ``refundStarPayment``).

        Raises:
            CapabilityError: The platform has no bot-initiated refunds (Discord).
        """
        ...
