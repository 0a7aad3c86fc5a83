"""The contract between the dispatcher, command handlers and the platform adapters.

A command is a :class:`CommandSpec`: its name, typed options, whether it is for admins, and an async handler
``handle(ctx) -> Reply``. The handler's docstring's first line is the command's help text, shown by ``/help``,
Telegram's command menu and Discord's slash-command picker.

Handlers are platform-neutral. What only a platform can do (admit a buyer to a course chat or role, refund a
Telegram Stars payment) goes through :class:`bot.core.ports.PlatformActions`, which each adapter implements.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bot.core.commands.cache import FiguresCache
from bot.core.locks import KeyedLocks
from bot.core.ports import PlatformActions
from bot.core.replies import Reply
from storage.events import CommandInvocation, MemberRef, Platform

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.clock import Clock
    from bot.config import CourseSettings, Settings
    from bot.core.alerts import SaleAlerts
    from bot.core.checkout import CheckoutSessions
    from storage.writer import EventWriter

OptionKind = Literal["text", "course", "member", "choice"]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One command option (a Discord slash-command option; a positional argument on Telegram/console).

    Attributes:
        name: Lowercase option name (``course``, ``member``).
        description: Shown in Discord's picker and in usage errors.
        kind: ``course`` values must be a configured course id (Discord offers them as choices); ``member``
            values are a platform user id (adapters resolve mentions, replies and ``@names`` to one).
        required: Whether the command refuses to run without it.
        choices: Allowed values for ``choice`` options.
        keyword: Typed as ``<name> <value>`` on Telegram and the console (``/refund charge stx123``), never filled
            from a bare positional argument; Discord shows it as a named option like any other.
    """

    name: str
    description: str
    kind: OptionKind = "text"
    required: bool = True
    choices: tuple[str, ...] = ()
    keyword: bool = False


class UsageError(Exception):
    """A member used a command wrongly; the message is shown to them as it is (say what to type instead)."""


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Everything a handler may use. Handlers never hold a database session: they call storage functions.

    Attributes:
        invocation: The command as the adapter translated it.
        options: Parsed option values by name (absent optional options are missing).
        is_admin: The adapter checked the platform's permissions (Telegram chat admin or owner id; Discord
            Manage Server or an admin role).
        settings: The configuration.
        engine: The database (read with ``asyncio.to_thread``).
        writer: The event writer (ledger writes, forgetting a member).
        community_id: The community's database id.
        clock: The current time.
        actions: The platform's capabilities.
        confirm_key: Key for short-lived confirmation tokens (``/forget confirm <token>``); the signing secret
            when set, else random per process (a restart just asks the member to confirm again).
        signing_secret: ``COHORTBOT_SECRET`` (signs Telegram invoice payloads), if set.
        sale_locks: One lock per payment, shared by everything that records sales (the dispatcher's).
        figures: Reports and rankings shared by the commands until the data changes (the dispatcher's).
        alerts: The owners' sale alerts (the dispatcher's); None where nobody is alerted.
        checkout_sessions: Creates card checkouts (Stripe) for /buy when ``[stripe] enabled``; None otherwise.
    """

    invocation: CommandInvocation
    options: Mapping[str, str]
    is_admin: bool
    settings: Settings
    engine: Engine
    writer: EventWriter
    community_id: int
    clock: Clock
    actions: PlatformActions
    confirm_key: bytes
    signing_secret: str | None = None
    sale_locks: KeyedLocks = field(default_factory=KeyedLocks)
    figures: FiguresCache = field(default_factory=FiguresCache)
    alerts: SaleAlerts | None = None
    checkout_sessions: CheckoutSessions | None = None

    @property
    def platform(self) -> Platform:
        """The platform the command came from."""
        return self.invocation.platform

    @property
    def invoker(self) -> MemberRef:
        """Who ran the command."""
        return self.invocation.invoker

    def course(self, course_id: str) -> CourseSettings:
        """The configured course with this id.

        Raises:
            UsageError: No such course (the message lists the ones there are).
        """
        for course in self.settings.courses:
            if course.id == course_id:
                return course
        known = ", ".join(c.id for c in self.settings.courses) or "none are configured"
        raise UsageError(f"There is no course {course_id!r}. Courses: {known}. See /courses.")


Handler = Callable[[CommandContext], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command: name, options, who may run it, and its handler."""

    name: str
    handler: Handler
    options: tuple[OptionSpec, ...] = ()
    admin: bool = False
    private: bool = True  # answers hold personal data: deliver them only to the invoker

    @property
    def help(self) -> str:
        """One-line help text: the first line of the handler's docstring."""
        doc = inspect.getdoc(self.handler) or self.name
        return doc.strip().splitlines()[0].rstrip(".")

    def usage(self) -> str:
        """``/grant <member> <course>`` style usage line."""
        parts = [f"/{self.name}"]
        for option in self.options:
            label = "|".join(option.choices) if option.choices else option.name
            if option.keyword:
                label = f"{option.name} …"
            parts.append(f"<{label}>" if option.required else f"[{label}]")
        return " ".join(parts)
