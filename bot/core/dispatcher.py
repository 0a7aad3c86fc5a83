"""The dispatcher: match a command, check who may run it, parse its options, run it, route every error.

One failing handler never takes the bot down: a :class:`UsageError` becomes a helpful answer to the member, any
other exception is logged with its traceback and the member gets a short apology.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from bot.core.alerts import SaleAlerts
from bot.core.commands.base import CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.commands.cache import FiguresCache
from bot.core.locks import KeyedLocks
from bot.core.ports import PlatformActions
from bot.core.replies import Reply
from bot.core.telemetry import NoTelemetry, Telemetry
from storage.events import CommandInvocation

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.clock import Clock
    from bot.config import Settings
    from bot.core.checkout import CheckoutSessions
    from storage.writer import EventWriter

log = logging.getLogger(__name__)


class NotStartedError(RuntimeError):
    """A command arrived before the app registered its community."""


class Dispatcher:
    """Runs commands for every adapter.

    Built by ``bot/app.py``; ``bind`` is called once the community is registered, before adapters start.
    """

    def __init__(
        self,
        commands: Iterable[CommandSpec],
        *,
        settings: Settings,
        engine: Engine,
        writer: EventWriter,
        clock: Clock,
        signing_secret: str | None = None,
        checkout_sessions: CheckoutSessions | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """Create a dispatcher.

        Args:
            commands: The command set (``bot.core.commands.all_commands()``).
            settings: The configuration.
            engine: The database.
            writer: The event writer.
            clock: The time source.
            signing_secret: ``COHORTBOT_SECRET``.
            checkout_sessions: Card checkouts for /buy (Stripe), when enabled.
            telemetry: Where each command's answer time is counted (``/metrics``); nothing by default.
        """
        self._commands: dict[str, CommandSpec] = {}
        for spec in commands:
            if spec.name in self._commands:
                raise ValueError(f"command /{spec.name} is defined twice")
            self._commands[spec.name] = spec
        self.settings = settings
        self.engine = engine
        self.writer = writer
        self.clock = clock
        self.signing_secret = signing_secret
        self.checkout_sessions = checkout_sessions
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.confirm_key = signing_secret.encode() if signing_secret else secrets.token_bytes(32)
        # Payments can arrive twice at once (a redelivery racing the original): they are recorded one at a time.
        self.sale_locks = KeyedLocks()
        # The owners' sale alerts ([sales] alert_chat / alert_channel); bot/app.py attaches the adapters.
        self.alerts = SaleAlerts(settings.sales)
        # Reports and rankings computed once and shared by every command until the writer commits new data.
        self.figures = FiguresCache()
        if writer is not None:  # the dispatcher's own tests run handlers without a writer or a database
            writer.add_commit_listener(self.figures.invalidate)
        self._community_id: int | None = None

    def bind(self, community_id: int) -> None:
        """Attach the registered community (called by ``App.start``)."""
        self._community_id = community_id

    @property
    def community_id(self) -> int:
        """The community's database id.

        Raises:
            NotStartedError: Before ``bind``.
        """
        if self._community_id is None:
            raise NotStartedError("the app has not registered its community yet")
        return self._community_id

    @property
    def commands(self) -> tuple[CommandSpec, ...]:
        """Every command, in definition order (adapters register these with the platform)."""
        return tuple(self._commands.values())

    def get(self, name: str) -> CommandSpec | None:
        """The command called ``name``, if there is one."""
        return self._commands.get(name)

    async def dispatch(self, invocation: CommandInvocation, *, is_admin: bool, actions: PlatformActions) -> Reply:
        """Run a command and return what to answer. Never raises.

        Args:
            invocation: The command, translated by the adapter.
            is_admin: Whether the adapter found the invoker to be an admin on the platform.
            actions: The platform's capabilities, for handlers that grant access or refund.

        Returns:
            The reply; personal replies are marked ``private``.
        """
        spec = self._commands.get(invocation.name)
        if spec is None:
            return Reply.say(f"I don't know /{invocation.name}. Send /help to see what I can do.", private=True)
        if spec.admin and not is_admin:
            log.info(
                "refused /%s to %s user %s: not an admin",
                spec.name,
                invocation.platform.value,
                invocation.invoker.user_id,
            )
            return Reply.say(
                f"Sorry, /{spec.name} is only for the community's admins.",
                private=True,
            )
        started = time.perf_counter()
        try:
            options = parse_options(spec, invocation.args, dict(invocation.options))
            ctx = CommandContext(
                invocation=invocation,
                options=options,
                is_admin=is_admin,
                settings=self.settings,
                engine=self.engine,
                writer=self.writer,
                community_id=self.community_id,
                clock=self.clock,
                actions=actions,
                confirm_key=self.confirm_key,
                sale_locks=self.sale_locks,
                figures=self.figures,
                alerts=self.alerts,
                signing_secret=self.signing_secret,
                checkout_sessions=self.checkout_sessions,
            )
            reply = await spec.handler(ctx)
        except UsageError as exc:
            return Reply.say(str(exc), f"Usage: {spec.usage()}", private=True)
        except Exception:
            log.exception("/%s failed for %s user %s", spec.name, invocation.platform.value, invocation.invoker.user_id)
            return Reply.say(
                f"Sorry, /{spec.name} failed on our side. The admins can find the details in the bot's log.",
                private=True,
            )
        finally:
            # Labelled by the command set's own name (spec.name), never by what the member typed.
            elapsed = time.perf_counter() - started
            self.telemetry.command_answered(spec.name, elapsed)
        log.info(
            "/%s for %s user %s answered in %.0f ms",
            spec.name,
            invocation.platform.value,
            invocation.invoker.user_id,
            elapsed * 1000,
        )
        return reply


def parse_options(spec: CommandSpec, args: tuple[str, ...], named: Mapping[str, str]) -> dict[str, str]:
    """Match positional ``args`` and ``named`` options to the command's option specs.

    Named options (Discord) win; positional arguments (Telegram, console) fill the remaining options in order.
    A keyword option is typed as its name and a value (``/refund charge stx123``) and is never filled positionally.
    The last text option takes the rest of the line, so ``/grant @ann py-async`` and free text both work.

    Raises:
        UsageError: Unknown, missing, extra or invalid options, with what was expected.
    """
    unknown = sorted(set(named) - {o.name for o in spec.options})
    if unknown:
        raise UsageError(f"/{spec.name} has no option {unknown[0]!r}.")
    values: dict[str, str] = {k: v.strip() for k, v in named.items() if v.strip()}
    queue = [a for a in args if a.strip()]
    keywords = {o.name: o for o in spec.options if o.keyword and o.name not in values}
    if keywords:
        positional: list[str] = []
        words = iter(queue)
        for word in words:
            option = keywords.get(word.lower())
            if option is None or option.name in values:
                positional.append(word)
                continue
            value = next(words, None)
            if value is None:
                raise UsageError(f"/{spec.name}: {option.name} needs a value: {option.name} <{option.name}>.")
            values[option.name] = value
        queue = positional
    remaining = [o for o in spec.options if o.name not in values and not o.keyword]
    for index, option in enumerate(remaining):
        if not queue:
            break
        is_last = index == len(remaining) - 1
        if is_last and option.kind == "text":
            values[option.name] = " ".join(queue)
            queue = []
        else:
            values[option.name] = queue.pop(0)
    if queue:
        raise UsageError(f"/{spec.name} got more than it expects: {' '.join(queue)!r}.")
    for option in spec.options:
        if option.name not in values:
            if option.required:
                raise UsageError(f"/{spec.name} needs {_describe(option)}.")
            continue
        values[option.name] = _check(spec, option, values[option.name])
    return values


def _describe(option: OptionSpec) -> str:
    if option.choices:
        return f"{option.name} ({' or '.join(option.choices)})"
    return f"a {option.name}" if option.kind in ("course", "member") else option.name


def _check(spec: CommandSpec, option: OptionSpec, value: str) -> str:
    if option.kind == "choice":
        lowered = value.lower()
        if lowered not in option.choices:
            raise UsageError(f"/{spec.name}: {option.name} must be {' or '.join(option.choices)}, not {value!r}.")
        return lowered
    if option.kind == "course":
        return value.lower()
    if option.kind == "member":
        cleaned = value.removeprefix("<@").removeprefix("!").removesuffix(">")
        if cleaned.isdigit() or (cleaned.startswith("@") and len(cleaned) > 1):
            return cleaned
        raise UsageError(
            f"/{spec.name}: {option.name} must be a member's numeric id, an @username, or a mention, not {value!r}."
        )
    return value
