"""The Telegram adapter: python-telegram-bot's client, driven on cohortbot's event loop.

``bot/app.py`` calls :meth:`TelegramAdapter.start` and :meth:`TelegramAdapter.stop`; the PTB ``Application`` is
initialised, started and stopped explicitly (never ``run_polling()``, which would own the loop and the signals).

How an update flows: PTB's updater (long polling) or our own webhook endpoint hands it to :meth:`handle_update`.
Activity (messages, reactions, joins, leaves) is translated and ``put`` to the writer at once, in delivery order.
Everything that talks back (commands, button presses, checkouts, payments) runs as a tracked task so that a slow
``/report`` never holds up logging or a checkout that must be answered within 10 seconds; ``stop`` waits for them.

In webhook mode an update is acknowledged only after it is stored: activity is flushed and a payment committed
before the HTTP 200, so a crash between the two makes Telegram deliver it again (and storage is idempotent).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import urllib.parse
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    CallbackQuery,
    Chat,
    ChatMember,
    ChatMemberAdministrator,
    Message,
    PreCheckoutQuery,
    Update,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, CallbackContext
from telegram.warnings import PTBDeprecationWarning

from bot.adapters.retry import Backoff, describe, sleep_unless, waiting_can_fix
from bot.adapters.telegram import render
from bot.adapters.telegram.ratelimit import FloodGate, FloodLimits
from bot.adapters.telegram.shape import check_update_shape
from bot.adapters.telegram.translate import (
    ALLOWED_UPDATES,
    MembershipDeduper,
    ParsedCommand,
    TranslationScope,
    activity_events,
    callback_command,
    command_invocation,
    member_ref,
    parse_command,
    parse_update,
    purchase_event,
    refund_event,
)
from bot.config import CourseSettings
from bot.core.commands.base import CommandSpec
from bot.core.markup import Rich, link, rich
from bot.core.payments import PaymentError, verify_payload
from bot.core.ports import AccessFix, AccessResult, AdapterDeps, AdapterStartError, CapabilityError, DeliveryError
from bot.core.replies import OutgoingMessage, Reply
from bot.core.sales import check_checkout, record_refund, record_sale, refuse_payment
from storage.events import ActivityEvent, CommandInvocation, MemberJoined, MemberLeft, MemberRef, Platform
from storage.writer import WriterClosedError

log = logging.getLogger(__name__)

T = TypeVar("T")

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
ADMIN_STATUSES: Final = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR})
IN_CHAT_STATUSES: Final = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR, ChatMember.MEMBER})
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
_NETWORK_RETRIES: Final = 5
# An update whose handling fails for a reason other than the database (a bug) is skipped after this many tries,
# so that one poisoned update cannot make the bot deaf; database errors are retried until they clear.
HANDLER_ATTEMPTS: Final = 5

PTBApplication = Application[Any, Any, Any, Any, Any, Any]


def file_base_url(api_base_url: str) -> str:
    """The file download URL that goes with a Bot API URL (``.../bot`` → ``.../file/bot``)."""
    base = api_base_url.rstrip("/")
    if base.endswith("/bot"):
        return base[: -len("/bot")] + "/file/bot"
    return base + "/file/bot"


def _retry_seconds(exc: RetryAfter) -> float:
    # PTB 22 warns that retry_after becomes a timedelta; accept both without the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value if isinstance(value, int | float) else value.total_seconds()


def _payment_hint(update: Update) -> str:
    """For a skipped payment, what an admin needs to record or refund it by hand."""
    message = update.message
    payment = message.successful_payment if message is not None else None
    if payment is None:
        return ""
    return f"; it was payment {payment.telegram_payment_charge_id}: record it with /grant or refund it"


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
        self._admin_cache: dict[tuple[int, int], tuple[float, bool]] = {}
        self._webhook_runner: web.AppRunner | None = None
        self._webhook_secret: str | None = None
        self._accepting = False
        self._poller: asyncio.Task[None] | None = None
        self._fetching = False
        self._confirmed_offset: int | None = None
        self._processed_offset: int | None = None
        self.retry_wait = retry_wait
        self.retry_cap = retry_cap
        # Where commands are answered besides private chats: the community's chats, the courses' chats and the
        # digest's chats. In any other group the bot was added to, it stays silent (logged once per chat).
        self.command_chat_ids = frozenset(
            (
                *self.config.chat_ids,
                *(c.telegram_chat_id for c in deps.settings.courses if c.telegram_chat_id is not None),
                *deps.settings.digest.telegram_chat_ids,
            )
        )
        self._silent_in: set[int] = set()

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
            self._webhook_secret = self._read_webhook_secret()
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(self.config.api_base_url)
            .base_file_url(file_base_url(self.config.api_base_url))
            .job_queue(None)
            .concurrent_updates(False)
        )
        # No PTB Updater: it confirms updates to Telegram as soon as it has fetched them, so a crash before they
        # were stored would lose them. Our own loop (``_poll``) confirms a batch only after it is on disk.
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
            self._accepting = True
            await self._register_commands()
            if webhook:
                await self._start_webhook()
            else:
                # A webhook left over from an earlier setup would make getUpdates fail with a conflict.
                await self._call(None, lambda: app.bot.delete_webhook(drop_pending_updates=False))
                self._poller = asyncio.get_running_loop().create_task(self._poll(), name="Telegram polling")
        except BaseException:
            # The app never sees a half-started adapter, so it would not stop it: release the client here.
            await self.stop()
            raise
        log.info(
            "Telegram bot @%s connected (%s), logging %d chat(s)",
            self.bot_username,
            self.config.mode,
            len(self.config.chat_ids),
        )
        self._spawn(self._health_task(), "Telegram health check")

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

    def supervised_tasks(self) -> dict[str, asyncio.Task[None]]:
        """The adapter's long-running tasks (the poller); the app exits non-zero when one ends on its own."""
        return {"Telegram polling": self._poller} if self._poller is not None else {}

    async def stop(self) -> None:
        """Stop receiving, hand every received update to the writer, finish replies and payments, disconnect."""
        app = self._app
        if app is None:
            return
        self._accepting = False
        if self._webhook_runner is not None:
            # Stops listening and waits for requests in progress; new ones are refused (Telegram retries them).
            await self._webhook_runner.cleanup()
            self._webhook_runner = None
        if self._poller is not None:
            await self._stop_polling(self._poller)
            self._poller = None
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
                log.error("%d Telegram task(s) did not finish within %.0fs; cancelling them", len(not_done), wait)
                for task in not_done:
                    task.cancel()
                await asyncio.gather(*not_done, return_exceptions=True)
                return

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:  # one failing task must never take the adapter down
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- long polling ----------------------------------------------------------------------------------------

    async def _poll(self) -> None:
        """Fetch updates, store them, then confirm them (the next getUpdates' offset) — at least once, never lost.

        A crash between storing and confirming makes Telegram deliver the batch again after the restart; storage
        is idempotent per message, reaction, membership change and payment, so nothing is counted twice. An update
        that cannot be stored (the database is locked or the disk full) is retried with back-off, and nothing after
        it is confirmed meanwhile. The loop ends only when the adapter stops; if it ends otherwise (a revoked
        token), the app sees the task end and exits non-zero.
        """
        backoff = Backoff(self.retry_wait, 60.0)
        while self._accepting:
            self._fetching = True
            try:
                updates = await self.app.bot.get_updates(
                    offset=self._processed_offset,
                    timeout=int(self.poll_timeout),
                    allowed_updates=list(ALLOWED_UPDATES),
                    read_timeout=self.poll_timeout + 10,
                )
            except RetryAfter as exc:
                await asyncio.sleep(_retry_seconds(exc))
                continue
            except InvalidToken as exc:
                raise RuntimeError(
                    "Telegram no longer accepts the bot token: polling stopped; fix COHORTBOT_TELEGRAM_TOKEN"
                ) from exc
            except TelegramError as exc:
                # Network trouble or a conflict (another process polling with this token): wait, then retry.
                wait = backoff.next()
                log.warning("Telegram getUpdates failed (%s); retrying in %g s", exc.message, wait)
                await asyncio.sleep(wait)
                continue
            finally:
                self._fetching = False
            backoff.reset()
            if not updates:
                continue
            if not await self._store_batch(updates):
                return  # stopping while an update waited for a retry: it stays unconfirmed, Telegram keeps it

    async def _store_batch(self, updates: Sequence[Update]) -> bool:
        """Hand a batch to storage, retrying an update whose handling failed; False if stopped before all were in."""
        backoff = Backoff(self.retry_wait, self.retry_cap)
        index = 0
        while index < len(updates):
            update = updates[index]
            try:
                await self.handle_update(update, wait_for_payments=True)
            except Exception as exc:
                if not waiting_can_fix(exc) and backoff.attempts + 1 >= HANDLER_ATTEMPTS:
                    log.error(
                        "Telegram update %d failed %d times (%s); skipped so that later updates are not held up%s",
                        update.update_id,
                        HANDLER_ATTEMPTS,
                        describe(exc),
                        _payment_hint(update),
                        exc_info=exc,
                    )
                else:
                    wait = backoff.next()
                    log.error(
                        "storing Telegram update %d failed (%s); retrying in %g s (Telegram keeps it until stored)",
                        update.update_id,
                        describe(exc),
                        wait,
                        exc_info=exc if backoff.attempts == 1 else None,  # the traceback once, not every retry
                    )
                    if not await sleep_unless(lambda: not self._accepting, wait):
                        return False
                    continue
            index += 1
            backoff.reset()
            # Confirmable once flushed (the next getUpdates flushes first, and so does stop): a stop while a later
            # update waits for a retry must not make Telegram deliver this one again (a command answered twice).
            self._processed_offset = update.update_id + 1
        # The writer retries a refused batch by itself: this returns once everything above is committed.
        await self.deps.writer.flush()
        return True

    async def _stop_polling(self, poller: asyncio.Task[None]) -> None:
        """End the poll loop, then tell Telegram which updates are stored so a restart does not replay them."""
        # A batch being handled is finished (a payment is recorded *and* its buyer admitted); only a wait for
        # new updates is cut short. ``_accepting`` is already false, so the loop ends after its batch, or at once
        # when it was waiting to retry an update.
        if self._fetching:
            poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        offset = self._processed_offset
        if offset is None or offset == self._confirmed_offset:
            return
        try:
            await self.deps.writer.flush()
        except WriterClosedError:
            # The writer failed (the app is stopping because of it): confirm nothing, Telegram sends them again.
            log.warning("the event writer is not running: the last Telegram updates stay unconfirmed")
            return
        try:
            # timeout=0 returns at once; whatever it returns stays unconfirmed and is delivered again next time.
            await self.app.bot.get_updates(offset=offset, timeout=0, limit=1, allowed_updates=list(ALLOWED_UPDATES))
            self._confirmed_offset = offset
        except TelegramError as exc:
            log.warning("could not confirm the last Telegram updates (%s): they will be stored again (once)", exc)

    # --- webhook ---------------------------------------------------------------------------------------------

    def _read_webhook_secret(self) -> str:
        if not self.config.webhook_url:
            raise AdapterStartError('[telegram] mode = "webhook" needs webhook_url (the public https:// address)')
        secret = os.environ.get(self.config.webhook_secret_env, "").strip()
        if not _SECRET_RE.fullmatch(secret):
            raise AdapterStartError(
                f'[telegram] mode = "webhook" needs the environment variable {self.config.webhook_secret_env} set '
                "to a secret of 1-256 letters, digits, _ or - (Telegram sends it back with every update)"
            )
        return secret

    async def _start_webhook(self) -> None:
        url = self.config.webhook_url or ""
        path = urllib.parse.urlsplit(url).path or "/"
        server = web.Application(client_max_size=10 * 1024 * 1024)
        server.router.add_post(path, self._on_webhook)
        runner = web.AppRunner(server, access_log=None, shutdown_timeout=30.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.webhook_host, self.config.webhook_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise AdapterStartError(
                f"cannot listen for the Telegram webhook on [telegram] webhook_listen = "
                f"{self.config.webhook_listen!r}: {exc.strerror or exc}"
            ) from exc
        self._webhook_runner = runner
        await self._call(
            None,
            lambda: self.app.bot.set_webhook(
                url,
                secret_token=self._webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=False,
            ),
        )
        log.info("Telegram webhook listening on %s%s for %s", self.config.webhook_listen, path, url)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if not self._accepting:
            return web.Response(status=503, text="stopping")
        given = request.headers.get(SECRET_HEADER, "")
        expected = self._webhook_secret or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("refused a webhook request from %s: wrong secret token", request.remote)
            return web.Response(status=403, text="wrong secret token")
        try:
            data = await request.json()
            check_update_shape(data)
            update = parse_update(data, self.app.bot)
        except Exception as exc:
            # A wrong type, deep nesting (RecursionError in the JSON parser) or a body PTB cannot read: answer 400 so
            # nothing is stored and Telegram (or whoever sent it) does not retry; a 500 would be retried forever.
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            log.warning("refused a webhook request: not a Telegram update: %s", reason)
            return web.Response(status=400, text="not an update")
        await self.handle_update(update, wait_for_payments=True)
        # Acknowledge only what is on disk: Telegram redelivers anything not answered with 2xx.
        await self.deps.writer.flush()
        return web.Response(status=200)

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
            self._spawn(self._pre_checkout(update.pre_checkout_query), "pre-checkout answer")
            return
        if update.callback_query is not None:
            self._spawn(self._button(update.callback_query), "button press")
            return
        if update.my_chat_member is not None:
            self._note_own_status(update)
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
                job = self._payment(message)
                if wait_for_payments:
                    await job
                else:
                    self._spawn(job, "payment")
                return
            command = self._command_in(message)
            if command is not None:
                if self._answers_in(message.chat):
                    self._spawn(self._run_command(message, command), f"/{command.name}")
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

    # --- commands --------------------------------------------------------------------------------------------

    def _command_in(self, message: Message) -> ParsedCommand | None:
        """The command a message runs, if it is one for us.

        In a group a bare ``/name`` is ours only if we have that command (other bots may share the group); in a
        private chat every ``/name`` is ours (unknown ones get "I don't know").
        """
        command = parse_command(message.text, self.bot_username)
        if command is None:
            return None
        if message.chat.type == Chat.PRIVATE or command.addressed:
            return command
        return command if self.deps.dispatcher.get(command.name) is not None else None

    def _answers_in(self, chat: Chat | None) -> bool:
        """Whether commands are answered in ``chat``: a private chat, or one of :attr:`command_chat_ids`.

        Anyone can add the bot to a group; there it must not answer (nor reveal the community's data), so it stays
        silent and says so once per chat in the log. (Activity there is not logged either: only ``chat_ids``.)
        """
        if chat is None or chat.type == Chat.PRIVATE or chat.id in self.command_chat_ids:
            return True
        if chat.id not in self._silent_in:
            self._silent_in.add(chat.id)
            log.warning(
                "ignoring commands in Telegram chat %s (%s): it is not in [telegram] chat_ids, a course's "
                "telegram_chat_id or [digest] telegram_chat_ids",
                chat.id,
                chat.title or chat.type,
            )
        return False

    def _member_option(self, message: Message, command: ParsedCommand) -> tuple[tuple[str, str], ...]:
        """``/grant <course>`` sent as a reply names the replied-to member (admins' shortcut).

        The member is the replied message's sender as Telegram identifies them (their user id), never a name.
        """
        spec = self.deps.dispatcher.get(command.name)
        replied = message.reply_to_message
        if spec is None or replied is None or replied.from_user is None or replied.from_user.is_bot:
            return ()
        if message.is_topic_message and replied.message_id == message.message_thread_id:
            return ()  # the topic's first message, not a reply
        member_options = [o for o in spec.options if o.kind == "member"]
        positional = [o for o in spec.options if not o.keyword]
        keywords = {o.name for o in spec.options if o.keyword}
        if any(arg.lower() in keywords for arg in command.args):
            return ()  # "/refund charge <id>" names a payment, not a member
        if not member_options or len(command.args) >= len(positional):
            return ()
        return ((member_options[0].name, str(replied.from_user.id)),)

    def _with_mentions(self, message: Message, command: ParsedCommand) -> ParsedCommand:
        """Replace text mentions (members without a username, picked from Telegram's list) by their user id.

        The mention's visible text is only a display name, which anyone can copy; the user the entity carries is
        Telegram's word for who was meant. Replaced by position (offsets count UTF-16 code units), so a name with
        spaces, or one that also appears elsewhere in the line, is handled.
        """
        text = message.text or ""
        mentions = [
            entity
            for entity in message.parse_entities(["text_mention"])
            if entity.user is not None and not entity.user.is_bot
        ]
        if not mentions:
            return command
        encoded = text.encode("utf-16-le")
        for entity in sorted(mentions, key=lambda e: e.offset, reverse=True):
            assert entity.user is not None
            start, end = entity.offset * 2, (entity.offset + entity.length) * 2
            encoded = encoded[:start] + f" {entity.user.id} ".encode("utf-16-le") + encoded[end:]
        return parse_command(encoded.decode("utf-16-le"), self.bot_username) or command

    async def _run_command(self, message: Message, command: ParsedCommand) -> None:
        user = message.from_user
        chat = message.chat
        thread_id = message.message_thread_id if message.is_topic_message else None
        if user is None or message.sender_chat is not None:
            await self._deliver_text(
                chat.id,
                'I can\'t answer anonymous commands: turn off "Remain anonymous" or send me the command privately.',
                thread_id=thread_id,
                reply_to=message.message_id,
            )
            return
        command = self._with_mentions(message, command)
        command = self._from_deep_link(chat, command)
        invocation = command_invocation(
            command,
            user=user,
            chat=chat,
            occurred_at=message.date,
            scope=self.scope,
            thread_id=thread_id,
            options=self._member_option(message, command),
        )
        await self._dispatch_and_deliver(invocation, chat=chat, thread_id=thread_id, reply_to=message.message_id)

    def _from_deep_link(self, chat: Chat, command: ParsedCommand) -> ParsedCommand:
        """``/start stats`` (from a ``t.me/<bot>?start=stats`` link) runs ``/stats``.

        Any other start parameter (a link shared with a campaign tag) just starts the bot, rather than being
        refused as an unexpected argument.
        """
        start = self.deps.dispatcher.get("start")
        if command.name != "start" or not command.args or (start is not None and start.options):
            return command
        target = command.args[0].lower()
        if chat.type == Chat.PRIVATE and len(command.args) == 1 and target != "start":
            spec = self.deps.dispatcher.get(target)
            if spec is not None and not any(o.required for o in spec.options):
                return ParsedCommand(target, (), addressed=False)
        return ParsedCommand("start", (), addressed=command.addressed)

    async def _button(self, query: CallbackQuery) -> None:
        # Acknowledge at once so the member's button stops spinning; the answer follows as a message.
        try:
            await self._call(None, lambda: query.answer())
        except TelegramError as exc:
            log.info("could not acknowledge a button press: %s", exc.message)
        command = callback_command(query, self.bot_username)
        if command is None:
            log.warning("ignored a button press with data %r: not a command", query.data)
            return
        message = query.message
        chat = message.chat if message is not None else None
        if not self._answers_in(chat):
            return
        thread_id = None
        if isinstance(message, Message) and message.is_topic_message:
            thread_id = message.message_thread_id
        invocation = command_invocation(
            command,
            user=query.from_user,
            chat=chat,
            occurred_at=self.deps.clock.now(),
            scope=self.scope,
            thread_id=thread_id,
        )
        await self._dispatch_and_deliver(invocation, chat=chat, thread_id=thread_id, reply_to=None)

    async def _dispatch_and_deliver(
        self, invocation: CommandInvocation, *, chat: Chat | None, thread_id: int | None, reply_to: int | None
    ) -> None:
        user_id = int(invocation.invoker.user_id)
        is_admin = await self.is_admin(user_id, chat)
        reply = await self.deps.dispatcher.dispatch(invocation, is_admin=is_admin, actions=self)
        await self.deliver(
            reply,
            user_id=user_id,
            chat=chat,
            thread_id=thread_id,
            reply_to=reply_to,
            command=invocation.name,
        )

    async def is_admin(self, user_id: int, chat: Chat | None) -> bool:
        """Whether a user may run admin commands here.

        Owners (``[telegram] owner_ids``) always may; in a configured group, its administrators; in a private
        chat, administrators of any configured chat. Elsewhere nobody else.
        """
        if user_id in self.config.owner_ids:
            return True
        if chat is not None and chat.type != Chat.PRIVATE:
            return chat.id in self.scope.chat_ids and await self._chat_admin(chat.id, user_id)
        for chat_id in self.config.chat_ids:
            if await self._chat_admin(chat_id, user_id):
                return True
        return False

    async def _chat_admin(self, chat_id: int, user_id: int) -> bool:
        now = asyncio.get_running_loop().time()
        cached = self._admin_cache.get((chat_id, user_id))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            member = await self._call(None, lambda: self.app.bot.get_chat_member(chat_id, user_id))
            admin = member.status in ADMIN_STATUSES
        except TelegramError as exc:
            log.info("could not check whether user %s is an admin of chat %s: %s", user_id, chat_id, exc.message)
            return False
        if len(self._admin_cache) > 4096:
            self._admin_cache = {k: v for k, v in self._admin_cache.items() if v[0] > now}
        self._admin_cache[(chat_id, user_id)] = (now + self.admin_cache_seconds, admin)
        return admin

    # --- replies ---------------------------------------------------------------------------------------------

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
                await render.send_parts(self.app.bot, user_id, parts, call=self._call)
            elif reply.private or reply.invoice is not None:
                await self._deliver_privately(
                    parts, user_id=user_id, chat=chat, thread_id=thread_id, reply_to=reply_to, command=command
                )
            else:
                assert chat is not None
                await render.send_parts(
                    self.app.bot, chat.id, parts, call=self._call, thread_id=thread_id, reply_to=reply_to
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
            await render.send_parts(self.app.bot, user_id, parts, call=self._call)
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
            call=self._call,
            thread_id=thread_id,
            reply_to=reply_to,
        )

    async def _deliver_text(self, chat_id: int, text: str, *, thread_id: int | None, reply_to: int | None) -> None:
        try:
            await render.send_parts(
                self.app.bot,
                chat_id,
                render.plan(Reply.say(text)),
                call=self._call,
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
            await render.send_parts(self.app.bot, chat_id, parts, call=self._call)
        except TelegramError as exc:
            user = message.direct or chat_id > 0
            if _unreachable(exc):
                raise DeliveryError(
                    f"Telegram refused to deliver to {'user' if user else 'chat'} {chat_id}: {exc.message}",
                    unreachable_user=user,
                ) from exc
            raise DeliveryError(f"Telegram refused a message to {chat_id}: {exc.message}") from exc

    async def _call(self, chat_id: int | None, request: Callable[[], Awaitable[T]]) -> T:
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
                seconds = _retry_seconds(exc)
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

    # --- command menu and health ---------------------------------------------------------------------------

    async def _register_commands(self) -> None:
        specs = self.deps.dispatcher.commands
        member = [_bot_command(s) for s in specs if not s.admin]
        everything = [_bot_command(s) for s in specs]
        scopes: list[tuple[Any, list[BotCommand]]] = [
            (BotCommandScopeDefault(), member),
            (BotCommandScopeAllChatAdministrators(), everything),
        ]
        scopes.extend((BotCommandScopeChat(owner), everything) for owner in self.config.owner_ids)
        for scope, commands in scopes:

            async def request(scope: Any = scope, commands: list[BotCommand] = commands) -> bool:
                return bool(await self.app.bot.set_my_commands(commands, scope=scope))

            try:
                await self._call(None, request)
            except TelegramError as exc:
                # An owner who never opened a chat with the bot has no chat yet; the menu is a convenience.
                log.info("could not set the command menu for %s: %s", scope.type, exc.message)

    async def _health_task(self) -> None:
        await self.check_health()

    async def check_health(self) -> list[str]:
        """Check the bot can do its job in every configured chat; warn in the log and tell the owners by DM.

        Returns:
            The problems found, each saying what to change.
        """
        bot = self.app.bot
        me = f"@{self.bot_username}"
        privacy_on = not bot.can_read_all_group_messages
        problems: list[str] = []
        for chat_id in self.config.chat_ids:
            status = await self._own_status(chat_id)
            if isinstance(status, str):
                problems.append(f"Chat {chat_id}: I can't see it ({status}). Add {me} to it and make it an admin.")
            elif status.status not in ADMIN_STATUSES:
                hidden = "reactions and joins/leaves"
                if privacy_on:
                    hidden += (
                        ", and, because privacy mode is on, ordinary messages too (alternatively turn privacy "
                        "mode off in @BotFather: /setprivacy → Disable, then remove and re-add the bot)"
                    )
                problems.append(
                    f"Chat {chat_id}: I am not an administrator, so Telegram does not send me {hidden}. "
                    f"Open the chat → Manage → Administrators → Add Admin → {me}."
                )
        for course in self.deps.settings.courses:
            if course.telegram_chat_id is None:
                continue
            status = await self._own_status(course.telegram_chat_id)
            where = f"Course chat {course.telegram_chat_id} ({course.id})"
            if isinstance(status, str):
                problems.append(f"{where}: I can't see it ({status}). Add {me} to it as an admin.")
            elif status.status == ChatMember.ADMINISTRATOR and isinstance(status, ChatMemberAdministrator):
                missing = [
                    right
                    for right, ok in (
                        ("Invite Users via Link", status.can_invite_users),
                        ("Ban Users", status.can_restrict_members),
                    )
                    if not ok
                ]
                if missing:
                    problems.append(f"{where}: give {me} the admin rights {' and '.join(missing)}.")
            elif status.status != ChatMember.OWNER:
                problems.append(
                    f"{where}: make {me} an admin with the rights Invite Users via Link and Ban Users, "
                    "so it can admit buyers and remove refunded ones."
                )
        for problem in problems:
            log.warning("Telegram setup: %s", problem)
        if problems:
            await self._tell_owners(rich("cohortbot setup check — please fix:", *(f"• {p}" for p in problems)))
        return problems

    async def _own_status(self, chat_id: int) -> ChatMember | str:
        try:
            return await self._call(None, lambda: self.app.bot.get_chat_member(chat_id, self.app.bot.id))
        except TelegramError as exc:
            return exc.message

    async def _tell_owners(self, text: Rich) -> None:
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

    # --- payments --------------------------------------------------------------------------------------------

    async def _pre_checkout(self, query: PreCheckoutQuery) -> None:
        try:
            reason = await check_checkout(
                self.deps.dispatcher,
                platform=self.platform.value,
                user_id=str(query.from_user.id),
                payload=query.invoice_payload,
                amount=query.total_amount,
                currency=query.currency,
            )
        except Exception:
            log.exception("checking a checkout by user %s failed; refusing it", query.from_user.id)
            reason = "Something went wrong on our side and you were not charged. Please try again in a minute."
        await self._call(None, lambda: query.answer(ok=reason is None, error_message=reason))
        log.info("checkout by user %s %s", query.from_user.id, "accepted" if reason is None else f"refused: {reason}")

    async def _payment(self, message: Message) -> None:
        buyer = message.from_user
        if buyer is None:
            log.error("a payment message without a sender arrived in chat %s; ignored", message.chat.id)
            return
        member = member_ref(buyer)
        community = self.scope.community
        if message.successful_payment is not None:
            payment = message.successful_payment
            try:
                payload = verify_payload(self.deps.secrets.signing_secret or "", payment.invoice_payload)
            except PaymentError as exc:
                await self._unmatched_payment(message, member, str(exc), refund=False)
                return
            if payload.user_id != member.user_id:
                # Telegram checks nothing of the kind; the pre-checkout refused it, so this should never happen.
                # If it does, the payer gets nothing and their money back (defence in depth).
                log.warning(
                    "payment %s: user %s paid an invoice made for user %s; refusing and refunding it",
                    payment.telegram_payment_charge_id,
                    member.user_id,
                    payload.user_id,
                )
                # The stored reason names nobody: the invoice's member may ask to be forgotten later.
                problem = "the invoice was made for another member, not for the payer"
                await self._unmatched_payment(message, member, problem, refund=True)
                return
            event = purchase_event(
                payment, buyer=buyer, course_id=payload.course_id, occurred_at=message.date, community=community
            )
            outcome = await record_sale(self.deps.dispatcher, event, self)
        else:
            refunded = message.refunded_payment
            assert refunded is not None
            outcome = await record_refund(
                self.deps.dispatcher,
                refund_event(refunded, occurred_at=message.date, community=community),
                member,
                self,
            )
        # A replayed payment was already answered the first time; only news (or a problem) is worth a message.
        # News includes a replay that finished an interrupted grant: its receipt carries the only invite sent.
        if outcome.created or outcome.access is not None or outcome.problem:
            await self.deliver(outcome.reply, user_id=buyer.id, chat=None, command="paysupport")

    async def _unmatched_payment(self, message: Message, member: MemberRef, problem: str, *, refund: bool) -> None:
        """Keep a payment that buys nothing; refund it when ``refund``; tell the payer and the owners once."""
        payment = message.successful_payment
        assert payment is not None
        refused = await refuse_payment(
            self.deps.dispatcher,
            self,
            charge_id=payment.telegram_payment_charge_id,
            payer=member,
            amount=payment.total_amount,
            currency=payment.currency,
            received_at=message.date,
            problem=problem,
            refund=refund,
        )
        if refused is None:
            return  # a redelivery of a payment already handled
        await self.deliver(refused.buyer, user_id=int(member.user_id), chat=None, command="paysupport")
        await self._tell_owners(refused.owners)

    # --- platform actions ------------------------------------------------------------------------------------

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Create a one-time invite link to the course chat; the receipt carries it to the buyer."""
        chat_id = course.telegram_chat_id
        if chat_id is None:
            return AccessResult(ok=True, detail="")
        try:
            invite = await self._call(
                None,
                lambda: self.app.bot.create_chat_invite_link(
                    chat_id, member_limit=1, name=f"{course.id} {member.user_id}"[:32]
                ),
            )
        except TelegramError as exc:
            return AccessResult(
                ok=False,
                problem=(
                    f"could not create an invite link for course chat {chat_id} ({exc.message}): make "
                    f"@{self.bot_username} an admin there with the right Invite Users via Link"
                ),
            )
        return AccessResult(ok=True, detail=f"Your personal invite link (it works once): {invite.invite_link}")

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Remove the member from the course chat (ban, then unban so they may come back if they buy again)."""
        chat_id = course.telegram_chat_id
        if chat_id is None:
            return AccessResult(ok=True, detail="the course has no Telegram chat")
        user_id = int(member.user_id)
        try:
            await self._call(None, lambda: self.app.bot.ban_chat_member(chat_id, user_id))
            await self._call(None, lambda: self.app.bot.unban_chat_member(chat_id, user_id, only_if_banned=True))
        except TelegramError as exc:
            return AccessResult(
                ok=False,
                problem=(
                    f"could not remove user {user_id} from course chat {chat_id} ({exc.message}): make "
                    f"@{self.bot_username} an admin there with the right Ban Users"
                ),
            )
        return AccessResult(ok=True, detail=f"removed from the course chat {chat_id}")

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Return a Stars payment (``refundStarPayment``); Telegram then reports it as ``refunded_payment``."""
        await self._call(
            None,
            lambda: self.app.bot.refund_star_payment(int(member.user_id), telegram_payment_charge_id=charge_id),
        )

    # --- AccessReconciler (the scheduler's daily check) -------------------------------------------------------

    async def access_holders(self, course: CourseSettings) -> frozenset[str] | None:
        """Bots cannot list a chat's members: always None, so buyers and refunded members are checked one by one."""
        return None

    async def ensure_access(self, user_id: str, course: CourseSettings, *, should_have: bool) -> AccessFix:
        """Remove a refunded member who is still in the course chat; list a buyer who has not joined it yet.

        A buyer outside the chat is not sent a new link every day: their one-time link from the receipt still
        works, and an admin sees them listed in the digest.
        """
        chat_id = course.telegram_chat_id
        if chat_id is None:
            return AccessFix(changed=False)
        try:
            member = await self._call(None, lambda: self.app.bot.get_chat_member(chat_id, int(user_id)))
        except TelegramError as exc:
            return AccessFix(
                changed=False,
                problem=f"cannot check course chat {chat_id} ({exc.message}): make @{self.bot_username} an admin there",
            )
        inside = member.status in IN_CHAT_STATUSES or bool(getattr(member, "is_member", False))
        if inside == should_have:
            return AccessFix(changed=False)
        if should_have:
            return AccessFix(changed=False, problem="bought it but has not joined the course chat (invite in receipt)")
        result = await self.revoke_access(MemberRef(user_id), course)
        return AccessFix(changed=result.ok, problem=result.problem)


def _bot_command(spec: CommandSpec) -> BotCommand:
    description = (spec.help or spec.name)[:256]
    return BotCommand(spec.name, description)
