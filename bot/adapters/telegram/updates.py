"""How updates arrive: our own long-polling loop or a webhook endpoint, both confirming only what is stored.

PTB's ``Updater`` is not used: it confirms updates to Telegram as soon as it has fetched them, so a crash before
they were stored would lose them. The poll loop confirms a batch (the next ``getUpdates`` offset) only after it is
on disk, and retries an update that could not be stored; the webhook answers 200 only after the update is stored,
so Telegram delivers anything unanswered again (and storage is idempotent). Each update is handed to
:meth:`TelegramAdapter.handle_update`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from aiohttp import web
from telegram import Update
from telegram.error import InvalidToken, RetryAfter, TelegramError

from bot.adapters.retry import Backoff, describe, sleep_unless, waiting_can_fix
from bot.adapters.telegram.ratelimit import retry_seconds
from bot.adapters.telegram.shape import check_update_shape
from bot.adapters.telegram.translate import ALLOWED_UPDATES, parse_update
from bot.core.ports import AdapterStartError, WebhookRoutes
from storage.writer import WriterClosedError

if TYPE_CHECKING:
    from bot.adapters.telegram.adapter import TelegramAdapter

log = logging.getLogger(__name__)

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Paths the dashboard answers itself; a webhook on the shared web server must use another.
_DASHBOARD_PATHS: Final = frozenset({"/", "/login", "/logout", "/live", "/healthz", "/metrics"})
# An update whose handling fails for a reason other than the database (a bug) is skipped after this many tries,
# so that one poisoned update cannot make the bot deaf; database errors are retried until they clear.
HANDLER_ATTEMPTS: Final = 5


def payment_hint(update: Update) -> str:
    """For a skipped payment, what an admin needs to record or refund it by hand."""
    message = update.message
    payment = message.successful_payment if message is not None else None
    if payment is None:
        return ""
    return f"; it was payment {payment.telegram_payment_charge_id}: record it with /grant or refund it"


class UpdateFeed:
    """Receives the adapter's updates by long polling or webhook (``[telegram] mode``) and confirms them once stored.

    Args:
        adapter: The adapter whose updates these are (its client, writer and retry settings).
    """

    def __init__(self, adapter: TelegramAdapter) -> None:
        self.adapter = adapter
        self.config = adapter.config
        self.poller: asyncio.Task[None] | None = None
        self._fetching = False
        self._polling = False  # cleared to end the poll loop alone (leadership lost), the adapter still running
        self._confirmed_offset: int | None = None
        self._processed_offset: int | None = None
        self._webhook_runner: web.AppRunner | None = None
        self._webhook_secret: str | None = None
        self._shared_path: str | None = None  # the path served on the one web server (dashboard in-process)
        # Why the last getUpdates failed while it keeps failing (None once one succeeded): /healthz reports it.
        self.failing: str | None = None
        self._webhook_set = False

    def connection_problem(self) -> str | None:
        """Why updates are not arriving (polling not running or failing, webhook not set); None when they can."""
        if self.config.mode == "webhook":
            return None if self._webhook_set else "the Telegram webhook is not set"
        if self.poller is None or self.poller.done():
            return "Telegram polling is not running"
        if self.failing is not None:
            return f"the Telegram Bot API is not reachable (getUpdates fails: {self.failing})"
        return None

    def check_webhook_settings(self) -> None:
        """Read the webhook secret before connecting, so a missing setting stops the start with what to fix.

        Raises:
            AdapterStartError: No ``webhook_url``, or the secret's environment variable unset or malformed.
        """
        self._webhook_secret = self._read_webhook_secret()

    async def start_polling(self) -> None:
        """Begin the poll loop (:attr:`poller`)."""
        bot = self.adapter.app.bot
        # A webhook left over from an earlier setup would make getUpdates fail with a conflict.
        await self.adapter.call(None, lambda: bot.delete_webhook(drop_pending_updates=False))
        self._polling = True
        self.poller = asyncio.get_running_loop().create_task(self._poll(), name="Telegram polling")

    async def stop_polling(self) -> None:
        """End the poll loop (if any) and confirm what is stored; the adapter keeps sending and answering."""
        # Forgotten first: from here on the poller's end is expected, not a task that died (see App.run_until).
        poller, self.poller = self.poller, None
        self._polling = False
        if poller is not None:
            await self._stop_polling(poller)

    async def stop(self) -> None:
        """Stop receiving; in polling mode, confirm to Telegram the updates already stored.

        Called after the adapter stopped accepting updates.
        """
        self._webhook_set = False
        webhooks = self.adapter.deps.webhooks
        if self._shared_path is not None and webhooks is not None:
            webhooks.remove(self._shared_path)
            self._shared_path = None
        if self._webhook_runner is not None:
            # Stops listening and waits for requests in progress; new ones are refused (Telegram retries them).
            await self._webhook_runner.cleanup()
            self._webhook_runner = None
        await self.stop_polling()

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

    async def start_webhook(self) -> None:
        """Listen for Telegram's POSTs, then tell Telegram where to send updates (``setWebhook``).

        Raises:
            AdapterStartError: The listening address is taken or not allowed.
        """
        url = self.config.webhook_url or ""
        path = urllib.parse.urlsplit(url).path or "/"
        webhooks = self.adapter.deps.webhooks
        if webhooks is not None:
            await self._serve_on_web_server(webhooks, url, path)
            return
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
        await self.adapter.call(
            None,
            lambda: self.adapter.app.bot.set_webhook(
                url,
                secret_token=self._webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=False,
            ),
        )
        self._webhook_set = True
        log.info("Telegram webhook listening on %s%s for %s", self.config.webhook_listen, path, url)

    async def _serve_on_web_server(self, webhooks: WebhookRoutes, url: str, path: str) -> None:
        # The dashboard's server already listens on [web] port: one port, one reverse proxy for both.
        if path in _DASHBOARD_PATHS:
            raise AdapterStartError(
                f"[telegram] webhook_url path {path!r} is taken by the dashboard; give the webhook a path of its "
                'own, e.g. "https://example.org/telegram"'
            )
        webhooks.add(path, self._on_webhook)
        self._shared_path = path
        await self.adapter.call(
            None,
            lambda: self.adapter.app.bot.set_webhook(
                url,
                secret_token=self._webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=False,
            ),
        )
        self._webhook_set = True
        log.info("Telegram webhook served by the web server ([web] port) on %s for %s", path, url)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if not self.adapter.accepting:
            return web.Response(status=503, text="stopping")
        given = request.headers.get(SECRET_HEADER, "")
        expected = self._webhook_secret or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("refused a webhook request from %s: wrong secret token", request.remote)
            return web.Response(status=403, text="wrong secret token")
        try:
            data = await request.json()
            check_update_shape(data)
            update = parse_update(data, self.adapter.app.bot)
        except Exception as exc:
            # A wrong type, deep nesting (RecursionError in the JSON parser) or a body PTB cannot read: answer 400 so
            # nothing is stored and Telegram (or whoever sent it) does not retry; a 500 would be retried forever.
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            log.warning("refused a webhook request: not a Telegram update: %s", reason)
            return web.Response(status=400, text="not an update")
        await self.adapter.handle_update(update, wait_for_payments=True)
        # Acknowledge only what is on disk: Telegram redelivers anything not answered with 2xx.
        await self.adapter.deps.writer.flush()
        return web.Response(status=200)

    async def _poll(self) -> None:
        """Fetch updates, store them, then confirm them (the next getUpdates' offset) — at least once, never lost.

        A crash between storing and confirming makes Telegram deliver the batch again after the restart; storage
        is idempotent per message, reaction, membership change and payment, so nothing is counted twice. An update
        that cannot be stored (the database is locked or the disk full) is retried with back-off, and nothing after
        it is confirmed meanwhile. The loop ends only when the adapter stops; if it ends otherwise (a revoked
        token), the app sees the task end and exits non-zero.
        """
        backoff = Backoff(self.adapter.retry_wait, 60.0)
        while self._receiving():
            self._fetching = True
            try:
                updates = await self.adapter.app.bot.get_updates(
                    offset=self._processed_offset,
                    timeout=int(self.adapter.poll_timeout),
                    allowed_updates=list(ALLOWED_UPDATES),
                    read_timeout=self.adapter.poll_timeout + 10,
                )
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
                continue
            except InvalidToken as exc:
                raise RuntimeError(
                    "Telegram no longer accepts the bot token: polling stopped; fix COHORTBOT_TELEGRAM_TOKEN"
                ) from exc
            except TelegramError as exc:
                # Network trouble or a conflict (another process polling with this token): wait, then retry.
                wait = backoff.next()
                self.failing = exc.message
                log.warning("Telegram getUpdates failed (%s); retrying in %g s", exc.message, wait)
                await asyncio.sleep(wait)
                continue
            finally:
                self._fetching = False
            if self.failing is not None:
                self.failing = None
                log.info("Telegram getUpdates works again")
                self.adapter.deps.telemetry.reconnected("telegram")
            backoff.reset()
            if not updates:
                continue
            if not await self._store_batch(updates):
                return  # stopping while an update waited for a retry: it stays unconfirmed, Telegram keeps it

    async def _store_batch(self, updates: Sequence[Update]) -> bool:
        """Hand a batch to storage, retrying an update whose handling failed; False if stopped before all were in."""
        backoff = Backoff(self.adapter.retry_wait, self.adapter.retry_cap)
        index = 0
        while index < len(updates):
            update = updates[index]
            try:
                await self.adapter.handle_update(update, wait_for_payments=True)
            except Exception as exc:
                if not waiting_can_fix(exc) and backoff.attempts + 1 >= HANDLER_ATTEMPTS:
                    log.error(
                        "Telegram update %d failed %d times (%s); skipped so that later updates are not held up%s",
                        update.update_id,
                        HANDLER_ATTEMPTS,
                        describe(exc),
                        payment_hint(update),
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
                    if not await sleep_unless(lambda: not self._receiving(), wait):
                        return False
                    continue
            index += 1
            backoff.reset()
            # Confirmable once flushed (the next getUpdates flushes first, and so does stop): a stop while a later
            # update waits for a retry must not make Telegram deliver this one again (a command answered twice).
            self._processed_offset = update.update_id + 1
        # The writer retries a refused batch by itself: this returns once everything above is committed.
        await self.adapter.deps.writer.flush()
        return True

    def _receiving(self) -> bool:
        return self.adapter.accepting and self._polling

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
            await self.adapter.deps.writer.flush()
        except WriterClosedError:
            # The writer failed (the app is stopping because of it): confirm nothing, Telegram sends them again.
            log.warning("the event writer is not running: the last Telegram updates stay unconfirmed")
            return
        try:
            # timeout=0 returns at once; whatever it returns stays unconfirmed and is delivered again next time.
            await self.adapter.app.bot.get_updates(
                offset=offset, timeout=0, limit=1, allowed_updates=list(ALLOWED_UPDATES)
            )
            self._confirmed_offset = offset
        except TelegramError as exc:
            log.warning("could not confirm the last Telegram updates (%s): they will be stored again (once)", exc)
