"""A fake Telegram Bot API server for tests: the real python-telegram-bot client talks to it over HTTP.

It answers the methods cohortbot uses (those ``bot/adapters/telegram`` calls), records every call, hands out injected
updates through ``getUpdates`` long polling with real ``offset`` semantics (an update is confirmed, and never
sent again, once a later call's offset passes it), enforces the ``allowed_updates`` opt-in for
``message_reaction``/``chat_member`` updates, and can answer any method with an injected error or a 429.

It runs in the test's event loop (``async with FakeBotApi() as api``); end-to-end tests point a ``cohortbot run``
subprocess at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.telegram_payloads import ADMIN_RIGHTS

# Updates Telegram sends only when asked for by name in allowed_updates.
OPT_IN_UPDATES = frozenset({"message_reaction", "message_reaction_count", "chat_member"})
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "message_reaction",
    "message_reaction_count",
    "callback_query",
    "pre_checkout_query",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "poll_answer",
)
# Text fields PTB sends raw; everything else it JSON-encodes.
RAW_FIELDS = frozenset(
    {
        "text",
        "caption",
        "title",
        "description",
        "payload",
        "currency",
        "error_message",
        "name",
        "secret_token",
        "url",
        "parse_mode",
        "callback_query_id",
        "pre_checkout_query_id",
        "telegram_payment_charge_id",
        "provider_token",
        "start_parameter",
        "language_code",
        "question",
    }
)
DEFAULT_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijkl"


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    finished: float | None = None  # getUpdates: when the long poll answered (two polls at once: two pollers)


@dataclass
class Failure:
    """An injected error for a method (optionally only for matching requests), used ``times`` times."""

    method: str
    error_code: int
    description: str
    retry_after: int | None = None
    times: int = 1
    match: Callable[[Call], bool] | None = None


def update_type(update: dict[str, Any]) -> str:
    for name in UPDATE_TYPES:
        if name in update:
            return name
    return "unknown"


class FakeBotApi:
    """The fake server. ``base_url`` is what goes into ``[telegram] api_base_url``."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_id: int = 7000000001,
        username: str = "cohort_test_bot",
        can_read_all_group_messages: bool = False,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.can_read_all_group_messages = can_read_all_group_messages
        self.calls: list[Call] = []
        self.pending: list[dict[str, Any]] = []
        self.delivered_ids: set[int] = set()
        self.confirmed_ids: set[int] = set()
        self.dropped: list[dict[str, Any]] = []
        self.allowed_updates: frozenset[str] | None = None  # None: Telegram's default (no opt-in types)
        self.failures: list[Failure] = []
        # (chat_id, user_id) -> status; the bot is an administrator everywhere unless told otherwise.
        self.statuses: dict[tuple[int, int], str] = {}
        self.admin_rights: dict[str, bool] = {}
        self.unreachable_users: set[int] = set()  # never pressed Start: DMs fail with 403
        # (user_id, first charge id) -> "active" | "canceled": the Stars subscriptions editUserStarSubscription knows.
        self.star_subscriptions: dict[tuple[int, str], str] = {}
        self.webhook: dict[str, Any] | None = None
        self.polls: dict[str, dict[str, Any]] = {}  # poll id -> the poll as sent
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(100_000)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._closing = False

    # --- control ---------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self, port: int = 0) -> FakeBotApi:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/bot{token}/{method}", self._api)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        async with self._changed:
            self._closing = True  # release long polls at once instead of at their timeout
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def add_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id (assigned unless given)."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        async with self._changed:
            self.pending.append(update)
            self.pending.sort(key=lambda u: u["update_id"])
            self._changed.notify_all()
        return int(update["update_id"])

    def fail(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        match: Callable[[Call], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` matching calls of ``method`` with an error."""
        self.failures.append(Failure(method, error_code, description, retry_after, times, match))

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self, method: str, predicate: Callable[[Call], bool] | None = None, *, count: int = 1, within: float = 10.0
    ) -> list[Call]:
        """Wait until ``count`` calls of ``method`` (matching ``predicate``) were made; returns them."""
        deadline = time.monotonic() + within
        async with self._changed:
            while True:
                found = [c for c in self.calls if c.method == method and (predicate is None or predicate(c))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({c.method for c in self.calls})
                    raise AssertionError(f"timed out waiting for {count} {method} call(s); saw {seen}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_confirmed(self, update_ids: list[int], within: float = 10.0) -> None:
        """Wait until the bot confirmed (fetched and moved its offset past) these updates."""
        deadline = time.monotonic() + within
        async with self._changed:
            while not set(update_ids) <= self.confirmed_ids:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"updates {sorted(set(update_ids) - self.confirmed_ids)} not confirmed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    # --- HTTP ------------------------------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
                return params, files
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = (value.filename, value.file.read())
                elif key in RAW_FIELDS:
                    params[key] = value
                else:
                    try:
                        params[key] = json.loads(value)
                    except (TypeError, ValueError):
                        params[key] = value
        return params, files

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        params, files = await self._params(request)
        if method == "getUpdates":
            return await self._get_updates(params)
        call = Call(method, params, files)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        failure = self._take_failure(call)
        if failure is not None:
            return self._error(failure.error_code, failure.description, failure.retry_after)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        try:
            result = handler(params)
        except _ApiError as exc:
            return self._error(exc.code, exc.description)
        return web.json_response({"ok": True, "result": result})

    def _take_failure(self, call: Call) -> Failure | None:
        for failure in self.failures:
            if failure.method == call.method and failure.times > 0 and (failure.match is None or failure.match(call)):
                failure.times -= 1
                return failure
        return None

    @staticmethod
    def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=code)

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        if "allowed_updates" in params:
            given = params["allowed_updates"]
            # An empty list means "the default", which leaves out the opt-in types.
            self.allowed_updates = frozenset(given) if given else None
        call = Call("getUpdates", params)
        deadline = time.monotonic() + timeout
        async with self._changed:
            self.calls.append(call)
            if offset:
                confirmed = [u for u in self.pending if u["update_id"] < offset]
                self.confirmed_ids.update(u["update_id"] for u in confirmed)
                self.pending = [u for u in self.pending if u["update_id"] >= offset]
            self._changed.notify_all()
            while True:
                ready = self._deliverable()
                if ready or self._closing or time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            call.finished = time.monotonic()
            self.delivered_ids.update(u["update_id"] for u in ready)
        failure = self._take_failure(call)
        if failure is not None:
            return self._error(failure.error_code, failure.description, failure.retry_after)
        return web.json_response({"ok": True, "result": ready})

    def _deliverable(self) -> list[dict[str, Any]]:
        """Pending updates the bot asked for; opt-in types it did not ask for are dropped, as Telegram does."""
        allowed = self.allowed_updates
        keep: list[dict[str, Any]] = []
        for update in self.pending:
            kind = update_type(update)
            wanted = kind in allowed if allowed is not None else kind not in OPT_IN_UPDATES
            if wanted:
                keep.append(update)
            else:
                self.dropped.append(update)
        self.pending = keep
        return keep[:100]

    # --- methods ---------------------------------------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Cohort", "username": self.username}

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
        return {"id": chat_id, "type": "supergroup", "title": f"chat {chat_id}"}

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id > 0 and chat_id in self.unreachable_users:
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self.bot_user(),
            **content,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": False,
        }

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = params
        if "allowed_updates" in params:
            self.allowed_updates = frozenset(params["allowed_updates"]) or None
        return True

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False, "pending_update_count": 0}

    def _m_logOut(self, params: dict[str, Any]) -> bool:
        return True

    def _m_close(self, params: dict[str, Any]) -> bool:
        return True

    def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params, text=params["text"])

    def _m_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        size = {"file_id": f"photo{next(self._ids)}", "file_unique_id": "u1", "width": 800, "height": 600}
        return self._message(params, photo=[size], **({"caption": params["caption"]} if "caption" in params else {}))

    def _m_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params, document={"file_id": f"doc{next(self._ids)}", "file_unique_id": "u2"})

    def _m_sendPoll(self, params: dict[str, Any]) -> dict[str, Any]:
        options = [o["text"] if isinstance(o, dict) else str(o) for o in params["options"]]
        if not 2 <= len(options) <= 10 or not 1 <= len(params["question"]) <= 300:
            raise _ApiError(400, "Bad Request: POLL_OPTIONS_INVALID")
        anonymous = params.get("is_anonymous", True) not in (False, "false", "False")
        poll = {
            "id": f"poll{next(self._ids)}",
            "question": params["question"],
            "options": [
                {"persistent_id": f"opt{index}", "text": text, "voter_count": 0} for index, text in enumerate(options)
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": anonymous,
            "type": "regular",
            "allows_multiple_answers": params.get("allows_multiple_answers") in (True, "true", "True"),
            "allows_revoting": True,
            "members_only": False,
        }
        self.polls[poll["id"]] = poll
        return self._message(params, poll=poll)

    def _m_sendInvoice(self, params: dict[str, Any]) -> dict[str, Any]:
        payload = params["payload"]
        if not 1 <= len(payload.encode()) <= 128:
            raise _ApiError(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        prices = params["prices"]
        total = sum(int(p["amount"]) for p in prices)
        return self._message(
            params,
            invoice={
                "title": params["title"],
                "description": params["description"],
                "start_parameter": params.get("start_parameter", ""),
                "currency": params["currency"],
                "total_amount": total,
            },
        )

    def _m_createInvoiceLink(self, params: dict[str, Any]) -> str:
        payload = params["payload"]
        if not 1 <= len(payload.encode()) <= 128:
            raise _ApiError(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        period = params.get("subscription_period")
        if period is not None and (int(period) != 2592000 or params.get("currency") != "XTR"):
            # Telegram's rule: Stars only, and 30 days is the only period.
            raise _ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        return f"https://t.me/$fakeInvoice{next(self._ids)}"

    def _m_editUserStarSubscription(self, params: dict[str, Any]) -> bool:
        key = (int(params["user_id"]), str(params["telegram_payment_charge_id"]))
        if key not in self.star_subscriptions:
            raise _ApiError(400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
        cancel = params["is_canceled"]
        self.star_subscriptions[key] = "canceled" if cancel in (True, "true", "True") else "active"
        return True

    def _m_answerPreCheckoutQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _m_createChatInviteLink(self, params: dict[str, Any]) -> dict[str, Any]:
        link = {
            "invite_link": f"https://t.me/+fakeInvite{next(self._ids)}",
            "creator": self.bot_user(),
            "creates_join_request": False,
            "is_primary": False,
            "is_revoked": False,
        }
        for key in ("member_limit", "name", "expire_date"):
            if key in params:
                link[key] = params[key]
        return link

    def _m_banChatMember(self, params: dict[str, Any]) -> bool:
        self.statuses[(int(params["chat_id"]), int(params["user_id"]))] = "kicked"
        return True

    def _m_unbanChatMember(self, params: dict[str, Any]) -> bool:
        key = (int(params["chat_id"]), int(params["user_id"]))
        if self.statuses.get(key) == "kicked" or not params.get("only_if_banned"):
            self.statuses[key] = "left"
        return True

    def _m_refundStarPayment(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        for command in params.get("commands", []):
            if not (1 <= len(command["command"]) <= 32 and 1 <= len(command["description"]) <= 256):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        return True

    def _m_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    def _m_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        default = "administrator" if user_id == self.bot_id else "member"
        status = self.statuses.get((chat_id, user_id), default)
        user = self.bot_user() if user_id == self.bot_id else {"id": user_id, "is_bot": False, "first_name": "U"}
        member: dict[str, Any] = {"user": user, "status": status}
        if status == "administrator":
            member.update({**ADMIN_RIGHTS, **self.admin_rights})
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _m_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._chat(int(params["chat_id"])), "accent_color_id": 0, "max_reaction_count": 11}


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
