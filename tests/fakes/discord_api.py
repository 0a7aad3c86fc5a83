"""A fake Discord (REST + gateway) on 127.0.0.1 that the real discord.py client connects to.

It speaks enough of the protocol for discord.py 2.7: HELLO, heartbeats, IDENTIFY → READY → GUILD_CREATE, member
chunks on request (op 8), RESUME with replay of the dispatches the client missed (by sequence number), RECONNECT
(op 7) and close code 4000 to force a reconnect, close code 4014 when privileged intents are "not enabled"; and the
REST endpoints the adapter uses. Every REST call is recorded; failures (429 with ``Via`` and ``retry_after``,
403 Missing Permissions / Cannot send messages to this user) can be injected per endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "fake-discord-bot-token"
APP_ID = "900000000000000001"
BOT_ID = "900000000000000002"
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
MESSAGE_CONTENT_INTENT = 1 << 15
GUILD_MESSAGE_POLLS_INTENT = 1 << 24
_ids = itertools.count(1_300_000_000_000_000_000)


DISCORD_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)
SUBSCRIPTION_ACTIVE, SUBSCRIPTION_ENDING, SUBSCRIPTION_INACTIVE = 0, 1, 2


def snowflake() -> str:
    """A fresh unique id."""
    return str(next(_ids))


def snowflake_at(at: datetime) -> str:
    """A fresh unique id made at ``at``: Discord ids carry their creation time (a subscription's is its start)."""
    ms = int((at - DISCORD_EPOCH).total_seconds() * 1000)
    return str((ms << 22) | (next(_ids) & 0x3FFFFF))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member(user_id: str, name: str, *, roles: Iterable[str] = (), bot: bool = False) -> dict[str, Any]:
    return {
        "user": user(user_id, name, bot=bot),
        "roles": list(roles),
        "joined_at": "2024-01-01T00:00:00+00:00",
        "nick": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
    }


def role(role_id: str, name: str, position: int, permissions: int = 0) -> dict[str, Any]:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "hoist": False,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


@dataclass
class FakeGuild:
    """A server with one text channel, one thread in it, roles and members."""

    id: str
    owner_id: str
    channel_id: str = field(default_factory=snowflake)
    thread_id: str = field(default_factory=snowflake)
    roles: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    name: str = "Fake server"

    def payload(self, bot: dict[str, Any], *, members_in_create: int) -> dict[str, Any]:
        everyone = role(self.id, "@everyone", 0, permissions=0x400 | 0x800 | 0x40)
        everyone_members = [bot, *self.members]
        return {
            "id": self.id,
            "name": self.name,
            "icon": None,
            "owner_id": self.owner_id,
            "member_count": len(everyone_members),
            "large": False,
            "unavailable": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [everyone, *self.roles],
            "channels": [
                {
                    "id": self.channel_id,
                    "type": 0,
                    "guild_id": self.id,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                    "topic": None,
                    "rate_limit_per_user": 0,
                    "last_message_id": None,
                }
            ],
            "threads": [
                {
                    "id": self.thread_id,
                    "type": 11,
                    "guild_id": self.id,
                    "parent_id": self.channel_id,
                    "owner_id": self.owner_id,
                    "name": "help thread",
                    "member_count": 2,
                    "message_count": 0,
                    "rate_limit_per_user": 0,
                    "flags": 0,
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": "2024-01-01T00:00:00+00:00",
                        "locked": False,
                    },
                }
            ],
            # Real large servers send only some members here; the client asks for the rest with op 8.
            "members": everyone_members[:members_in_create],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "afk_timeout": 300,
        }


@dataclass(frozen=True)
class Call:
    """One REST request the client made."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: dict[str, bytes]
    authorization: str | None

    def matches(self, method: str, pattern: str) -> bool:
        return self.method == method and re.fullmatch(pattern, self.path) is not None


@dataclass
class _Injection:
    method: str
    pattern: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class _Session:
    id: str
    shard: list[int] | None
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


class FakeDiscord:
    """The fake server. ``async with FakeDiscord(guilds) as fake:`` starts it on a random port."""

    def __init__(self, guilds: list[FakeGuild], *, token: str = TOKEN, members_in_create: int = 2) -> None:
        self.guilds = guilds
        self.token = token
        self.members_in_create = members_in_create
        self.bot = member(BOT_ID, "cohortbot", bot=True)
        self.calls: list[Call] = []
        self.refuse_privileged = False
        self.gateway_down = False  # answer the gateway's websocket upgrade with 503, like an outage
        # As Discord does: without the Message Content intent in IDENTIFY, content, attachments and embeds of
        # messages are sent blank. Off by default so older tests keep their content.
        self.blank_without_message_content = False
        # As Discord does: a role given or taken over REST changes the member and is announced with
        # GUILD_MEMBER_UPDATE (so the client's member cache knows). Off by default so older tests keep their roles.
        self.reflect_role_changes = False
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.chunk_requests: list[dict[str, Any]] = []
        self.interaction_tokens: dict[str, str] = {}
        self._injections: list[_Injection] = []
        self._session: _Session | None = None
        self._ws: web.WebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._sockets: set[web.WebSocketResponse] = set()

    # ------------------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # the same port again after ``__aexit__``
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------------------------------------ waiting

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], *, within: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked whenever the fake sees traffic); return its value."""

        async def poll() -> Any:
            while True:
                value = predicate()
                if value:
                    return value
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.1)

        return await asyncio.wait_for(poll(), within)

    async def wait_for_call(self, method: str, pattern: str, *, count: int = 1, within: float = 10.0) -> list[Call]:
        """Wait until at least ``count`` calls match; return the matching calls."""
        return list(
            await self.wait_for(
                lambda: (found := self.find(method, pattern)) and len(found) >= count and found, within=within
            )
        )

    def find(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.matches(method, pattern)]

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # ------------------------------------------------------------------------------------------------ gateway

    async def _send(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(frame))

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send a dispatch (or keep it for replay while the client is disconnected); return its sequence number."""
        async with self._send_lock:
            session = self._session
            assert session is not None, "no gateway session yet"
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.log.append(frame)
            if self._ws is not None:
                await self._send(self._ws, frame)
        await self._notify()
        return session.seq

    async def force_reconnect(self, *, how: str = "close", code: int = 4000) -> None:
        """Drop the connection the way Discord does: a close code (4000 = resume), or an op 7 RECONNECT."""
        async with self._send_lock:
            ws, self._ws = self._ws, None
        assert ws is not None, "not connected"
        if how == "close":
            await ws.close(code=code, message=b"closed by the fake")
        else:
            await self._send(ws, {"op": 7, "d": None, "s": None, "t": None})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, data = frame.get("op"), frame.get("d")
                if op == 1:
                    await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(ws, data)
                elif op == 6:
                    await self._resume(ws, data)
                elif op == 8:
                    await self._chunk(data)
        finally:
            self._sockets.discard(ws)
            if self._ws is ws:
                self._ws = None
            await self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.refuse_privileged and int(data.get("intents", 0)) & PRIVILEGED_INTENTS:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        async with self._send_lock:
            self._session = _Session(id=snowflake(), shard=data.get("shard"))
            self._ws = ws
        ready = {
            "v": 10,
            "user": self.bot["user"],
            "guilds": [{"id": g.id, "unavailable": True} for g in self.guilds],
            "session_id": self._session.id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if data.get("shard"):
            ready["shard"] = data["shard"]
        await self.dispatch("READY", ready)
        for guild in self.guilds:
            await self.dispatch("GUILD_CREATE", guild.payload(self.bot, members_in_create=self.members_in_create))

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.resumes.append(data)
        session = self._session
        if session is None or data.get("session_id") != session.id or data.get("token") != self.token:
            await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
            return
        async with self._send_lock:
            for frame in session.log:
                if frame["s"] > int(data.get("seq") or 0):
                    await self._send(ws, frame)
            self._ws = ws
        await self.dispatch("RESUMED", {})

    async def _chunk(self, data: dict[str, Any]) -> None:
        self.chunk_requests.append(data)
        guild = next(g for g in self.guilds if g.id == str(data["guild_id"]))
        payload = {
            "guild_id": guild.id,
            "members": [self.bot, *guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            payload["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", payload)

    # ------------------------------------------------------------------------------------------------ scenarios

    def guild(self, guild_id: str | None = None) -> FakeGuild:
        return self.guilds[0] if guild_id is None else next(g for g in self.guilds if g.id == guild_id)

    def member_payload(self, user_id: str) -> dict[str, Any]:
        for guild in self.guilds:
            for m in guild.members:
                if m["user"]["id"] == user_id:
                    return m
        raise KeyError(user_id)

    async def message(
        self,
        author_id: str,
        content: str = "hello",
        *,
        channel_id: str | None = None,
        guild_id: str | None = None,
        message_id: str | None = None,
        reply_to: tuple[str, str] | None = None,
        bot: bool = False,
        attachments: int = 0,
        embeds: int = 0,
    ) -> str:
        """A member posts; returns the message id. ``reply_to`` is (message id, author id)."""
        guild = self.guild(guild_id)
        member_data = self.member_payload(author_id) if not bot else member(author_id, "somebot", bot=True)
        message_id = message_id or snowflake()
        data: dict[str, Any] = {
            "id": message_id,
            "type": 19 if reply_to else 0,
            "channel_id": channel_id or guild.channel_id,
            "guild_id": guild_id or guild.id,
            "author": member_data["user"],
            "member": {k: v for k, v in member_data.items() if k != "user"},
            "content": content,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {"id": snowflake(), "filename": f"f{i}.png", "size": 1, "url": f"https://cdn/f{i}.png", "proxy_url": ""}
                for i in range(attachments)
            ],
            "embeds": [{"type": "link", "url": f"https://example.org/{i}"} for i in range(embeds)],
            "pinned": False,
            "flags": 0,
        }
        intents = int(self.identifies[-1].get("intents", 0)) if self.identifies else 0
        if self.blank_without_message_content and not intents & MESSAGE_CONTENT_INTENT:
            data.update(content="", attachments=[], embeds=[])
        if reply_to:
            data["message_reference"] = {"type": 0, "message_id": reply_to[0], "channel_id": data["channel_id"]}
            data["referenced_message"] = {
                "id": reply_to[0],
                "type": 0,
                "channel_id": data["channel_id"],
                "author": self.member_payload(reply_to[1])["user"],
                "content": "",
                "timestamp": now_iso(),
                "edited_timestamp": None,
                "tts": False,
                "mention_everyone": False,
                "mentions": [],
                "mention_roles": [],
                "attachments": [],
                "embeds": [],
                "pinned": False,
            }
        await self.dispatch("MESSAGE_CREATE", data)
        return message_id

    async def reaction(
        self, user_id: str, message_id: str, *, author_id: str | None = None, added: bool = True, emoji: str = "🔥"
    ) -> None:
        guild = self.guild()
        data: dict[str, Any] = {
            "user_id": user_id,
            "message_id": message_id,
            "channel_id": guild.channel_id,
            "guild_id": guild.id,
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if added:
            data["member"] = self.member_payload(user_id)
            if author_id:
                data["message_author_id"] = author_id
        await self.dispatch("MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE", data)

    async def member_join(self, user_id: str, name: str) -> None:
        guild = self.guild()
        data = member(user_id, name)
        guild.members.append(data)
        await self.dispatch("GUILD_MEMBER_ADD", {**data, "guild_id": guild.id, "joined_at": now_iso()})

    async def member_leave(self, user_id: str) -> None:
        guild = self.guild()
        data = self.member_payload(user_id)
        guild.members.remove(data)
        await self.dispatch("GUILD_MEMBER_REMOVE", {"guild_id": guild.id, "user": data["user"]})

    def entitlement(self, user_id: str, sku_id: str, *, entitlement_id: str | None = None) -> dict[str, Any]:
        return {
            "id": entitlement_id or snowflake(),
            "sku_id": sku_id,
            "application_id": APP_ID,
            "user_id": user_id,
            "promotion_id": None,
            "type": 8,
            "deleted": False,
            "gift_code_flags": 0,
            "consumed": False,
            "starts_at": None,
            "ends_at": None,
            "guild_id": self.guild().id,
        }

    def subscription(
        self,
        user_id: str,
        sku_id: str,
        *,
        start: datetime,
        end: datetime,
        status: int = SUBSCRIPTION_ACTIVE,
        entitlement_ids: Iterable[str] = (),
        subscription_id: str | None = None,
        canceled_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A subscription object as Discord sends it in SUBSCRIPTION_CREATE/UPDATE/DELETE (its id made at ``start``)."""
        return {
            "id": subscription_id or snowflake_at(start),
            "user_id": user_id,
            "sku_ids": [sku_id],
            "entitlement_ids": list(entitlement_ids),
            "renewal_sku_ids": None,
            "current_period_start": start.isoformat(),
            "current_period_end": end.isoformat(),
            "status": status,
            "canceled_at": canceled_at.isoformat() if canceled_at is not None else None,
        }

    def _interaction_base(self, user_id: str, *, permissions: int, kind: int) -> dict[str, Any]:
        guild = self.guild()
        interaction_id, token = snowflake(), f"itoken-{snowflake()}"
        self.interaction_tokens[interaction_id] = token
        member_data = dict(self.member_payload(user_id))
        member_data["permissions"] = str(permissions)
        return {
            "id": interaction_id,
            "application_id": APP_ID,
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": guild.id,
            "guild_locale": "en-US",
            "locale": "en-US",
            "channel_id": guild.channel_id,
            "channel": {"id": guild.channel_id, "type": 0, "guild_id": guild.id, "name": "general"},
            "member": member_data,
            "app_permissions": str(0x800 | 0x8000 | 0x10000000),
            "entitlements": [],
            "authorizing_integration_owners": {"0": guild.id},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }

    async def slash(
        self, user_id: str, name: str, options: dict[str, str] | None = None, *, permissions: int = 0x400 | 0x800
    ) -> str:
        """A member runs ``/name``; returns the interaction token (its responses are recorded under it)."""
        payload = self._interaction_base(user_id, permissions=permissions, kind=2)
        opts: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for key, value in (options or {}).items():
            if key == "member":
                target = self.member_payload(value)
                opts.append({"name": key, "type": 6, "value": value})
                resolved.setdefault("users", {})[value] = target["user"]
                resolved.setdefault("members", {})[value] = {k: v for k, v in target.items() if k != "user"}
            else:
                opts.append({"name": key, "type": 3, "value": value})
        # Guild commands carry the guild id in ``data``; discord.py finds the command by it.
        payload["data"] = {"id": snowflake(), "name": name, "type": 1, "options": opts, "guild_id": self.guild().id}
        if resolved:
            payload["data"]["resolved"] = resolved
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["token"])

    async def press(self, user_id: str, message: dict[str, Any], custom_id: str, *, permissions: int = 0x400) -> str:
        """A member presses the button ``custom_id`` under ``message`` (a message object the bot sent)."""
        payload = self._interaction_base(user_id, permissions=permissions, kind=3)
        payload["message"] = message
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["token"])

    def responses(self, token: str) -> list[Call]:
        """The interaction callback and follow-ups sent for one interaction, in order."""
        return [c for c in self.calls if token in c.path and c.method == "POST"]

    async def wait_responses(self, token: str, count: int = 1, *, within: float = 10.0) -> list[Call]:
        return list(
            await self.wait_for(lambda: len(self.responses(token)) >= count and self.responses(token), within=within)
        )

    # ------------------------------------------------------------------------------------------------ REST

    def inject(
        self,
        method: str,
        pattern: str,
        status: int,
        *,
        code: int = 0,
        message: str = "",
        retry_after: float = 0.05,
        times: int = 1,
        via: bool = True,
    ) -> None:
        """Make the next ``times`` matching requests fail with ``status`` (429 carries ``retry_after``)."""
        body: dict[str, Any] = {"message": message or "You are being rate limited.", "code": code}
        headers = {}
        if status == 429:
            body.update(retry_after=retry_after, **{"global": False})
            if via:
                headers["Via"] = "1.1 google"
            headers["Retry-After"] = str(retry_after)
            headers["X-RateLimit-Scope"] = "user"
        self._injections.append(_Injection(method, pattern, status, body, headers, times))

    def inject_missing_permissions(self, method: str, pattern: str, *, times: int = 1) -> None:
        self.inject(method, pattern, 403, code=50013, message="Missing Permissions", times=times)

    def inject_cannot_dm(self, *, times: int = 1) -> None:
        self.inject(
            "POST", r"/channels/\d+/messages", 403, code=50007, message="Cannot send messages to this user", times=times
        )

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        # discord.py only parses a body whose Content-Type is exactly application/json.
        return web.Response(
            status=status,
            body=json.dumps(data).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def _read(self, request: web.Request) -> tuple[Any, dict[str, bytes]]:
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            files: dict[str, bytes] = {}
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(data)
                else:
                    files[part.filename or part.name or "file"] = bytes(data)  # type: ignore[union-attr]
            return payload, files
        if request.can_read_body:
            raw = await request.read()
            return (json.loads(raw) if raw else None), {}
        return None, {}

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._read(request)
        call = Call(request.method, path, dict(request.query), body, files, request.headers.get("Authorization"))
        self.calls.append(call)
        await self._notify()
        for injection in self._injections:
            if injection.times > 0 and call.matches(injection.method, injection.pattern):
                injection.times -= 1
                return self._json(injection.body, injection.status, injection.headers)
        is_interaction = path.startswith(("/interactions/", "/webhooks/"))
        if not is_interaction and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        response = self._route(call)
        role_change = re.fullmatch(r"/guilds/(\d+)/members/(\d+)/roles/(\d+)", path)
        if self.reflect_role_changes and role_change and request.method in ("PUT", "DELETE"):
            await self._change_role(role_change[1], role_change[2], role_change[3], add=request.method == "PUT")
        return response

    async def _change_role(self, guild_id: str, user_id: str, role_id: str, *, add: bool) -> None:
        try:
            data = self.member_payload(user_id)
        except KeyError:
            return  # not (or no longer) a member: nothing to announce
        roles = [r for r in data["roles"] if r != role_id] + ([role_id] if add else [])
        if roles == data["roles"]:
            return
        data["roles"] = roles
        await self.dispatch("GUILD_MEMBER_UPDATE", {**data, "guild_id": guild_id})

    def _route(self, call: Call) -> web.Response:
        m, p = call.method, call.path
        if m == "GET" and p == "/users/@me":
            return self._json(self.bot["user"])
        if m == "GET" and p == "/oauth2/applications/@me":
            return self._json(
                {
                    "id": APP_ID,
                    "name": "cohortbot",
                    "icon": None,
                    "description": "",
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "verify_key": "0" * 64,
                    "owner": user(self.guild().owner_id, "owner"),
                    "team": None,
                    "flags": 0,
                    "summary": "",
                }
            )
        if m == "GET" and p == "/gateway/bot":
            return self._json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
                }
            )
        if m == "GET" and p == "/gateway":
            return self._json({"url": self.gateway_url})
        if m == "PUT" and (match := re.fullmatch(r"/applications/(\d+)(?:/guilds/(\d+))?/commands", p)):
            commands = [
                {**c, "id": snowflake(), "application_id": APP_ID, "version": snowflake(), "guild_id": match[2]}
                for c in call.json or []
            ]
            return self._json(commands)
        if m in ("PUT", "DELETE") and re.fullmatch(r"/guilds/\d+/members/\d+/roles/\d+", p):
            return web.Response(status=204)
        if m == "GET" and (match := re.fullmatch(r"/guilds/(\d+)/members/(\d+)", p)):
            try:
                return self._json(self.member_payload(match[2]))
            except KeyError:
                return self._json({"message": "Unknown Member", "code": 10007}, 404)
        if m == "POST" and p == "/users/@me/channels":
            recipient = str((call.json or {})["recipient_id"])
            try:
                recipient_user = self.member_payload(recipient)["user"]
            except KeyError:
                recipient_user = user(recipient, "stranger")
            return self._json(
                {"id": f"7{recipient}"[:19], "type": 1, "recipients": [recipient_user], "last_message_id": None}
            )
        if m == "POST" and (match := re.fullmatch(r"/channels/(\d+)/messages", p)):
            return self._json(self._message_object(match[1], call))
        if m == "POST" and (match := re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", p)):
            message = self._message_object(self.guild().channel_id, call, nested=True)
            kind = (call.json or {}).get("type")
            flags = ((call.json or {}).get("data") or {}).get("flags", 0)
            return self._json(
                {
                    "interaction": {
                        "id": match[1],
                        "type": 2,
                        "response_message_id": message["id"],
                        "response_message_loading": kind == 5,
                        "response_message_ephemeral": bool(flags & 64),
                    },
                    "resource": {"type": kind, "message": message},
                }
            )
        if re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/@original)?", p):
            if m == "DELETE":
                return web.Response(status=204)
            return self._json(self._message_object(self.guild().channel_id, call))
        return self._json({"message": f"fake Discord has no {m} {p}", "code": 0}, 404)

    def _message_object(self, channel_id: str, call: Call, *, nested: bool = False) -> dict[str, Any]:
        body = call.json or {}
        if nested:
            body = body.get("data") or {}
        return {
            "id": snowflake(),
            "type": 0,
            "channel_id": channel_id,
            "author": self.bot["user"],
            "content": body.get("content") or "",
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {"id": snowflake(), "filename": name, "size": len(data), "url": f"https://cdn/{name}", "proxy_url": ""}
                for name, data in call.files.items()
            ],
            "embeds": [],
            "pinned": False,
            "flags": body.get("flags", 0),
            "components": body.get("components") or [],
            **({"poll": self._poll_object(body["poll"])} if body.get("poll") else {}),
        }

    def _poll_object(self, request: dict[str, Any]) -> dict[str, Any]:
        """A sent message's poll as Discord returns it: answers numbered from 1, open for ``duration`` hours."""
        answers = [{"answer_id": index, "poll_media": a["poll_media"]} for index, a in enumerate(request["answers"], 1)]
        expiry = datetime.now(UTC) + timedelta(hours=int(request.get("duration", 24)))
        return {
            "question": request["question"],
            "answers": answers,
            "expiry": expiry.isoformat(),
            "allow_multiselect": bool(request.get("allow_multiselect")),
            "layout_type": request.get("layout_type", 1),
            "results": {"is_finalized": False, "answer_counts": []},
        }

    async def poll_vote(self, user_id: str, message_id: str, answer_id: int, *, added: bool = True) -> bool:
        """A member votes (or withdraws a vote) on the poll in ``message_id``; answer ids count from 1.

        Discord sends these only to a bot that identified with the Guild Message Polls intent (1 << 24); returns
        whether it was sent.
        """
        intents = int(self.identifies[-1].get("intents", 0)) if self.identifies else 0
        if not intents & GUILD_MESSAGE_POLLS_INTENT:
            return False
        guild = self.guild()
        data = {
            "user_id": user_id,
            "channel_id": guild.channel_id,
            "message_id": message_id,
            "guild_id": guild.id,
            "answer_id": answer_id,
        }
        await self.dispatch("MESSAGE_POLL_VOTE_ADD" if added else "MESSAGE_POLL_VOTE_REMOVE", data)
        return True
