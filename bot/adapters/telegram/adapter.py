"""The Telegram adapter: python-telegram-bot's client, driven on cohortbot's event loop.

``bot/app.py`` calls :meth:`TelegramAdapter.start` and :meth:`TelegramAdapter.stop`; the PTB ``Application`` is
initialised, started and stopped explicitly (never ``run_polling()``, which would own the loop and the signals).

How an update flows: our poll loop or webhook endpoint (``updates.py``) hands it to :meth:`handle_update`.
Activity (messages, reactions, joins, leaves) is translated and ``put`` to the writer at once, in delivery order.
Everything that talks back (commands, button presses, checkouts, payments) runs as a tracked task so that a slow
``/report`` never holds up logging or a checkout that must be answered within 10 seconds; ``stop`` waits for them.

In webhook mode an update is acknowledged only after it is stored: activity is flushed and a payment committed
before the HTTP 200, so a crash between the two makes Telegram deliver it again (and storage is idempotent).

The adapter owns the client's lifecycle, the routing of updates and delivery (flood limits, 429s, private replies).
It hands the rest to collaborators: :class:`~bot.adapters.telegram.updates.UpdateFeed` (polling and webhook),
:class:`~bot.adapters.telegram.commands.CommandRouter` (commands, buttons, who is an admin),
:class:`~bot.adapters.telegram.access.CourseAccess` (course chats, refunds, reconciliation, the setup check) and
:mod:`~bot.adapters.telegram.payments` (checkouts and payments, decided by :mod:`bot.core.sales`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

from telegram import Chat, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, CallbackContext

from analytics.formatting import plural
from bot.adapters.retry import Backoff, describe
from bot.adapters.telegram import payments, polls, render
from bot.adapters.telegram.access import CourseAccess
from bot.adapters.telegram.commands import CommandRouter
from bot.adapters.telegram.ratelimit import FloodGate, FloodLimits, retry_seconds
from bot.adapters.telegram.translate import ADMIN_STATUSES, MembershipDeduper, TranslationScope, activity_events
from bot.adapters.telegram.updates import UpdateFeed
from bot.config import CourseSettings
from bot.core.markup import Rich, link, rich
from bot.core.ports import (
    AccessFix,
    AccessResult,
    AdapterDeps,
    AdapterStartError,
    CapabilityError,
    DeliveryError,
    PostedSurvey,
)
from bot.core.replies import OutgoingMessage, Reply
from storage.events import ActivityEvent, ChannelRef, MemberJoined, MemberLeft, MemberRef, Platform

log = logging.getLogger(__name__)

T = TypeVar("T")

_NETWORK_RETRIES: Final = 5

PTBApplication = Application[Any, Any, Any, Any, Any, Any]


def file_base_url(api_base_url: str) -> str:
    """The file download URL that goes with a Bot API URL (``.../bot`` → ``.../file/bot``)."""
    base = api_base_url.rstrip("/")
    if base.endswith("/bot"):
        return base[: -len("/bot")] + "/file/bot"
    return base + "/file/bot"


def _unreachable(exc: TelegramError) -> bool:
    """Whether an error means the user cannot be messaged (blocked the bot, never started it, deleted)."""
    if isinstance(exc, Forbidden):
        return True
    return isinstance(exc, BadRequest) and "chat not found" in exc.message.lower()


class TelegramAdapter:
    """Logs a Telegram community, answers commands, sells courses in Stars.

    Args:
        deps: The wired parts (settings, secrets, writer, dispatcher, clock, engine).
        flood_limits: Send limits (Telegram's by default; tests may loosen them).
        poll_timeout: Long-poll duration in seconds.
        admin_cache_seconds: How long a "who is admin" answer from Telegram is trusted.
        retry_wait: The first wait before retrying an update that could not be stored, or an unreachable Bot API
            at start; it doubles up to ``retry_cap`` seconds.
        retry_cap: The longest wait between retries.
    """

    name = "telegram"
    platform = Platform.TELEGRAM

    def __init__(
        self,
        deps: AdapterDeps,
        *,
        flood_limits: FloodLimits | None = None,
        poll_timeout: float = 10.0,
        admin_cache_seconds: float = 60.0,
        retry_wait: float = 1.0,
        retry_cap: float = 30.0,
    ) -> None:
        self.deps = deps
        self.config = deps.settings.telegram
        self.poll_timeout = poll_timeout
        self.admin_cache_seconds = admin_cache_seconds
        self.drain_seconds = 30.0
        self.gate = FloodGate(flood_limits)
        self.scope = TranslationScope(
            community=deps.settings.community.name,
            chat_ids=frozenset(self.config.chat_ids),
            store_text=deps.settings.storage.store_text,
        )
        self._app: PTBApplication | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dedupe = MembershipDeduper()
        # Whether updates are taken in: false before start and from the moment stop begins.
        self.accepting = False
        self.retry_wait = retry_wait
        self.retry_cap = retry_cap
        self._updates = UpdateFeed(self)
        # Several processes on PostgreSQL: only the leader polls (Telegram allows one getUpdates at a time).
        self._polling_deferred = False
        self._leading = False  # with polling deferred: whether this process leads (and so must be polling)
        self._commands = CommandRouter(self)
        self._access = CourseAccess(self)

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def app(self) -> PTBApplication:
        """The running PTB application.

        Raises:
            RuntimeError: Before ``start``.
        """
        if self._app is None:
            raise RuntimeError("the Telegram adapter is not started")
        return self._app

    @property
    def bot_username(self) -> str:
        """The bot's username, known once started."""
        return self.scope.bot_username or ""

    async def start(self) -> None:
        """Connect, register the command menu, begin polling (or serve the webhook), then check permissions.

        Raises:
            AdapterStartError: No token, a refused token, an unreachable Bot API, or webhook settings missing.
        """
        token = self.deps.secrets.telegram_token
        if not token:
            raise AdapterStartError("COHORTBOT_TELEGRAM_TOKEN is not set: set it to the token from @BotFather")
        webhook = self.config.mode == "webhook"
        if webhook:
            self._updates.check_webhook_settings()
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(self.config.api_base_url)
            .base_file_url(file_base_url(self.config.api_base_url))
            .job_queue(None)
            .concurrent_updates(False)
        )
        # No PTB Updater: it confirms updates to Telegram as soon as it has fetched them, so a crash before they
        # were stored would lose them. Our own loop (``UpdateFeed``) confirms a batch only after it is on disk.
        builder = builder.updater(None)
        app: PTBApplication = builder.build()
        app.add_error_handler(self._on_error)
        await self._connect(app)
        self._app = app
        self.scope = TranslationScope(
            community=self.scope.community,
            chat_ids=self.scope.chat_ids,
            store_text=self.scope.store_text,
            bot_username=app.bot.username,
        )
        try:
            await app.start()
            self.accepting = True
            await self._commands.register_commands()
            if webhook:
                await self._updates.start_webhook()
            elif self._polling_deferred:
                log.info("Telegram polling starts when this process becomes the leader")
            else:
                await self._updates.start_polling()
        except BaseException:
            # The app never sees a half-started adapter, so it would not stop it: release the client here.
            await self.stop()
            raise
        log.info(
            "Telegram bot @%s connected (%s), logging %s",
            self.bot_username,
            self.config.mode,
            plural(len(self.config.chat_ids), "chat"),
        )
        self.spawn(self._health_task(), "Telegram health check")

    def defer_leader_duties(self) -> None:
        """Poll only while this process leads (:meth:`lead`); webhook mode takes updates in every process."""
        self._polling_deferred = True

    async def lead(self) -> None:
        """This process became the leader: start polling (polling mode, once started; idempotent)."""
        if self.config.mode != "polling" or self._app is None or not self.accepting:
            return
        self._leading = True
        if self._updates.poller is None:
            await self._updates.start_polling()
            log.info("Telegram polling started: this process leads")

    async def follow(self) -> None:
        """This process lost the leader lock: stop polling (the new leader polls); sending goes on."""
        self._leading = False
        if self._updates.poller is not None:
            await self._updates.stop_polling()
            log.info("Telegram polling stopped: this process no longer leads")

    async def _health_task(self) -> None:
        await self.check_health()

    async def _connect(self, app: PTBApplication) -> None:
        """Initialise the client (``getMe``), retrying with back-off while the Bot API cannot be reached.

        Raises:
            AdapterStartError: Telegram refused the token (retrying cannot help).
        """
        backoff = Backoff(self.retry_wait, self.retry_cap)
        while True:
            try:
                await app.initialize()
                return
            except InvalidToken as exc:
                raise AdapterStartError(
                    "Telegram refused the bot token: check COHORTBOT_TELEGRAM_TOKEN (copy it again from @BotFather)"
                ) from exc
            except BadRequest as exc:  # a NetworkError in PTB, but the API was reached and said no
                raise AdapterStartError(
                    f"the Telegram Bot API at {self.config.api_base_url} refused getMe: {exc.message}; "
                    "check [telegram] api_base_url"
                ) from exc
            except (NetworkError, OSError) as exc:  # also TimedOut and a 5xx from a proxy in front of the API
                wait = backoff.next()
                reason = exc.message if isinstance(exc, TelegramError) else describe(exc)
                # The base URL never holds the token (PTB appends it per request), so it is safe to show.
                log.warning(
                    "Telegram Bot API unreachable at %s: %s; retrying in %g s",
                    self.config.api_base_url,
                    reason,
                    wait,
                )
                await asyncio.sleep(wait)
            except TelegramError as exc:  # reached, and refused for a reason waiting will not change (a 403)
                raise AdapterStartError(
                    f"the Telegram Bot API at {self.config.api_base_url} refused getMe: {exc.message}; "
                    "check [telegram] api_base_url"
                ) from exc

    def connection_problem(self) -> str | None:
        """For ``/healthz``: why updates are not arriving (polling stopped or failing, webhook unset); None if alive."""
        if self._app is None or not self.accepting:
            return "the Telegram adapter is not running"
        if self.config.mode == "polling" and self._polling_deferred and not self._leading:
            return None  # a follower does not poll on purpose: the leader does, and this process still sends
        return self._updates.connection_problem()

    def supervised_tasks(self) -> dict[str, asyncio.Task[None]]:
        """The adapter's long-running tasks (the poller); the app exits non-zero when one ends on its own."""
        poller = self._updates.poller
        return {"Telegram polling": poller} if poller is not None else {}

    async def stop(self) -> None:
        """Stop receiving, hand every received update to the writer, finish replies and payments, disconnect."""
        app = self._app
        if app is None:
            return
        self.accepting = False
        await self._updates.stop()
        if app.running:
            # Processes every update already fetched (our handler puts their events) before returning.
            await app.stop()
        await self._drain_tasks()
        await app.shutdown()
        self._app = None
        log.info("Telegram adapter stopped")

    async def _drain_tasks(self) -> None:
        # Tasks may start others (a payment answers with a message): loop until none are left.
        while self._tasks:
            pending = set(self._tasks)
            _, not_done = await asyncio.wait(pending, timeout=self.drain_seconds)
            if not_done:
                wait = self.drain_seconds
                tasks = plural(len(not_done), "Telegram task")
                log.error("%s did not finish within %.0fs; cancelling them", tasks, wait)
                for task in not_done:
                    task.cancel()
                await asyncio.gather(*not_done, return_exceptions=True)
                return

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` as a tracked task that ``stop`` waits for; a failure is logged, never raised."""

        async def guarded() -> None:
            try:
                await coro
            except Exception:  # one failing task must never take the adapter down
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- incoming updates ------------------------------------------------------------------------------------

    async def _on_error(self, update: object, context: CallbackContext[Any, Any, Any, Any]) -> None:
        log.error("error while handling a Telegram update", exc_info=context.error)

    async def handle_update(self, update: Update, *, wait_for_payments: bool = False) -> None:
        """Route one update: activity to the writer now, everything that answers as a task.

        Args:
            update: The update.
            wait_for_payments: Finish recording a payment before returning (webhook mode acknowledges after).
        """
        if update.edited_message is not None:
            return  # an edit is not a new message
        if update.pre_checkout_query is not None:
            self.spawn(payments.pre_checkout(self, update.pre_checkout_query), "pre-checkout answer")
            return
        if update.callback_query is not None:
            self.spawn(self._commands.button(update.callback_query), "button press")
            return
        if update.my_chat_member is not None:
            self._note_own_status(update)
            return
        if update.poll_answer is not None:
            await polls.poll_answer(self, update.poll_answer)  # stored before the update is confirmed
            return
        message = update.message
        if message is not None:
            if message.migrate_to_chat_id is not None and message.chat.id in self.scope.chat_ids:
                log.warning(
                    "Telegram chat %s became the supergroup %s: replace %s with %s in [telegram] chat_ids "
                    "(and in [digest] telegram_chat_ids) and restart, or its activity is no longer logged",
                    message.chat.id,
                    message.migrate_to_chat_id,
                    message.chat.id,
                    message.migrate_to_chat_id,
                )
            if message.successful_payment is not None or message.refunded_payment is not None:
                job = payments.payment(self, message)
                if wait_for_payments:
                    await job
                else:
                    self.spawn(job, "payment")
                return
            command = self._commands.command_in(message)
            if command is not None:
                if self._commands.answers_in(message.chat):
                    self.spawn(self._commands.run_command(message, command), f"/{command.name}")
                return
        for event in activity_events(update, self.scope):
            await self._put(event)

    async def _put(self, event: ActivityEvent) -> None:
        if isinstance(event, MemberJoined | MemberLeft):
            event = self._dedupe(event)
        try:
            await self.deps.writer.put(event)
        except Exception:
            log.exception("could not queue a Telegram event for storage: %r", event)

    def _note_own_status(self, update: Update) -> None:
        change = update.my_chat_member
        if change is None or change.chat.id not in self.scope.chat_ids:
            return
        status = change.new_chat_member.status
        if status not in ADMIN_STATUSES:
            log.warning(
                "the bot is now %r in configured chat %s (%s): it must be an administrator there to see reactions, "
                "joins and leaves",
                status,
                change.chat.id,
                change.chat.title,
            )
        else:
            log.info("the bot is an administrator in chat %s (%s)", change.chat.id, change.chat.title)

    # --- replies ---------------------------------------------------------------------------------------------

    async def is_admin(self, user_id: int, chat: Chat | None) -> bool:
        """Whether a user may run admin commands here (see :meth:`CommandRouter.is_admin`)."""
        return await self._commands.is_admin(user_id, chat)

    async def deliver(
        self,
        reply: Reply,
        *,
        user_id: int,
        chat: Chat | None,
        thread_id: int | None = None,
        reply_to: int | None = None,
        command: str = "start",
    ) -> None:
        """Send a command's reply where it belongs.

        Personal replies (and invoices) go to the member's private chat; in a group the member also gets a short
        pointer there, or, when the bot cannot message them yet, a link that opens the bot and runs the command.
        Everything else answers in the chat the command came from.
        """
        try:
            parts = render.plan(reply)
        except CapabilityError as exc:
            log.error("cannot show the answer to /%s in Telegram: %s", command, exc)
            parts = render.plan(Reply.say("Sorry, I can't show this answer in Telegram.", private=reply.private))
        in_private = chat is None or chat.type == Chat.PRIVATE
        try:
            if in_private:
                await render.send_parts(self.app.bot, user_id, parts, call=self.call)
            elif reply.private or reply.invoice is not None:
                await self._deliver_privately(
                    parts, user_id=user_id, chat=chat, thread_id=thread_id, reply_to=reply_to, command=command
                )
            else:
                assert chat is not None
                await render.send_parts(
                    self.app.bot, chat.id, parts, call=self.call, thread_id=thread_id, reply_to=reply_to
                )
        except TelegramError as exc:
            if _unreachable(exc):
                log.info("could not answer /%s to user %s: %s", command, user_id, exc.message)
            else:
                log.error("could not answer /%s to user %s: %s", command, user_id, exc.message)

    async def _deliver_privately(
        self,
        parts: Sequence[render.Part],
        *,
        user_id: int,
        chat: Chat | None,
        thread_id: int | None,
        reply_to: int | None,
        command: str,
    ) -> None:
        assert chat is not None
        try:
            await render.send_parts(self.app.bot, user_id, parts, call=self.call)
        except TelegramError as exc:
            if not _unreachable(exc):
                raise
            deep_link = f"https://t.me/{self.bot_username}?start={command}"
            note = rich(
                [
                    "I can't message you privately yet: ",
                    link("open a chat with me", deep_link),
                    ", press Start, and I'll answer there.",
                ]
            )
        else:
            note = rich("I sent you the answer privately.")
        await render.send_parts(
            self.app.bot,
            chat.id,
            render.plan(Reply(note)),
            call=self.call,
            thread_id=thread_id,
            reply_to=reply_to,
        )

    async def deliver_text(self, chat_id: int, text: str, *, thread_id: int | None, reply_to: int | None) -> None:
        """Answer in a chat with plain text; a refusal is logged, not raised (used for short notices)."""
        try:
            await render.send_parts(
                self.app.bot,
                chat_id,
                render.plan(Reply.say(text)),
                call=self.call,
                thread_id=thread_id,
                reply_to=reply_to,
            )
        except TelegramError as exc:
            log.info("could not answer in chat %s: %s", chat_id, exc.message)

    async def send(self, message: OutgoingMessage) -> None:
        """Send a message the bot starts (digest, nudge, receipt), waiting out flood limits and 429s.

        Raises:
            DeliveryError: Telegram refused for good (``unreachable_user`` when a member blocked the bot or never
                started it), or the message cannot be shown in Telegram.
        """
        if message.platform != Platform.TELEGRAM.value:
            raise DeliveryError(f"the Telegram adapter cannot send a {message.platform} message")
        try:
            chat_id = int(message.target)
        except ValueError as exc:
            raise DeliveryError(f"{message.target!r} is not a Telegram chat or user id") from exc
        try:
            parts = render.plan(message.reply)
        except CapabilityError as exc:
            raise DeliveryError(str(exc)) from exc
        try:
            await render.send_parts(self.app.bot, chat_id, parts, call=self.call)
        except TelegramError as exc:
            user = message.direct or chat_id > 0
            if _unreachable(exc):
                raise DeliveryError(
                    f"Telegram refused to deliver to {'user' if user else 'chat'} {chat_id}: {exc.message}",
                    unreachable_user=user,
                ) from exc
            raise DeliveryError(f"Telegram refused a message to {chat_id}: {exc.message}") from exc

    async def call(self, chat_id: int | None, request: Callable[[], Awaitable[T]]) -> T:
        """Run one Bot API request: flood-limited when it sends to a chat, retried on 429 and network errors.

        A 429 is waited out for as long as Telegram says, however often: a digest or receipt is delayed, never
        dropped. Network failures are retried a few times with backoff before giving up.
        """
        failures = 0
        while True:
            if chat_id is not None:
                await self.gate.acquire(chat_id)
            try:
                return await request()
            except RetryAfter as exc:
                seconds = retry_seconds(exc)
                log.warning(
                    "Telegram flood limit: waiting %.0fs before sending to %s again",
                    seconds,
                    chat_id if chat_id is not None else "the API",
                )
                if chat_id is None:
                    await asyncio.sleep(seconds)
                else:
                    # Held in the gate, so other sends to this chat wait too instead of drawing more 429s.
                    self.gate.pause(chat_id, seconds)
            except BadRequest:
                raise  # a BadRequest is a NetworkError in PTB, but retrying the same request cannot help
            except NetworkError as exc:
                failures += 1
                if failures > _NETWORK_RETRIES:
                    raise
                delay = min(2.0**failures, 30.0)
                log.warning("Telegram request failed (%s); retry %d in %.0fs", exc.message, failures, delay)
                await asyncio.sleep(delay)

    async def tell_owners(self, text: Rich) -> None:
        """Message every owner privately; an owner who never started the bot is named in the log instead."""
        for owner in self.config.owner_ids:
            try:
                await self.send(OutgoingMessage(self.name, str(owner), Reply(text), direct=True))
            except DeliveryError as exc:
                log.warning(
                    "could not tell owner %s in Telegram (%s): the owner must open a chat with @%s and press Start",
                    owner,
                    exc.reason,
                    self.bot_username,
                )

    # --- platform actions and the daily check (see access.py) ------------------------------------------------

    async def check_health(self) -> list[str]:
        """Check the bot can do its job in every configured chat; warn in the log and tell the owners by DM.

        Returns:
            The problems found, each saying what to change.
        """
        return await self._access.check_health()

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Create a one-time invite link to the course chat; the receipt carries it to the buyer."""
        return await self._access.grant_access(member, course)

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Remove the member from the course chat (they may come back if they buy again)."""
        return await self._access.revoke_access(member, course)

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Return a Stars payment (``refundStarPayment``); Telegram then reports it as ``refunded_payment``."""
        await self._access.refund_payment(member, charge_id)

    async def set_subscription_cancelled(self, member: MemberRef, subscription_ref: str, *, cancelled: bool) -> None:
        """Stop or resume a Stars subscription's renewals (``editUserStarSubscription``)."""
        try:
            await self._access.set_subscription_cancelled(member, subscription_ref, cancelled=cancelled)
        except TelegramError as exc:
            raise CapabilityError(f"Telegram refused to change the subscription: {exc.message}") from exc

    async def post_survey(self, channel: ChannelRef, reply: Reply) -> PostedSurvey:
        """Post a survey question with its buttons in a chat (see ``polls.py``)."""
        return await polls.post_survey(self, channel, reply)

    async def post_poll(self, channel: ChannelRef, question: str, options: tuple[str, ...]) -> PostedSurvey:
        """Post a native non-anonymous poll (``sendPoll``; see ``polls.py``)."""
        return await polls.post_poll(self, channel, question, options)

    async def access_holders(self, course: CourseSettings) -> frozenset[str] | None:
        """Bots cannot list a chat's members: always None, so buyers and refunded members are checked one by one."""
        return await self._access.access_holders(course)

    async def ensure_access(self, user_id: str, course: CourseSettings, *, should_have: bool) -> AccessFix:
        """Remove a refunded member who is still in the course chat; list a buyer who has not joined it yet."""
        return await self._access.ensure_access(user_id, course, should_have=should_have)
