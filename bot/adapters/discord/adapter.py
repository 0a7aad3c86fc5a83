"""The Discord adapter: discord.py's client on the shared event loop, translating gateway events into cohortbot events.

How events get in: the client is created with ``enable_debug_events`` and overrides ``dispatch`` so that every
decoded gateway frame reaches :meth:`DiscordAdapter._on_raw_frame` synchronously, inside the library's receive
loop and before the library handles it. Activity is therefore handed to the writer in gateway order, nothing is
lost in a task that is still pending at shutdown, uncached messages and reactions count, and the translation that
runs is the one tested on recorded payloads (``translate.py``). discord.py objects are used only to answer:
interaction responses, role changes, DMs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import discord
import yarl

from bot.adapters.retry import Backoff, describe, sleep_unless, waiting_can_fix
from bot.config import CourseSettings
from bot.core.commands.base import CommandSpec
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
from bot.core.reported_subscriptions import end_by_entitlement, note_access_lost, receive_subscription
from bot.core.sales import receive_entitlement, record_refund
from bot.core.surveys import PollVote, receive_poll_vote
from storage.events import ActivityEvent, ChannelRef, CommandInvocation, EventError, MemberRef, Platform
from storage.subscriptions import SubscriptionRecord

from . import translate
from .commands import build_tree, command_button_class
from .render import CommandButtonFactory, respond, send_reply

log = logging.getLogger(__name__)

# Discord JSON error codes that mean "an admin must change something", and one that means "this member said no".
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
CANNOT_DM_USER = 50007
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011

_RAW_EVENTS = (
    "MESSAGE_CREATE",
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "GUILD_MEMBER_ADD",
    "GUILD_MEMBER_REMOVE",
    "ENTITLEMENT_",
    "SUBSCRIPTION_",
    "INTERACTION_CREATE",
    "MESSAGE_POLL_VOTE_",
)
_SUBSCRIPTION_EVENTS = frozenset({"SUBSCRIPTION_CREATE", "SUBSCRIPTION_UPDATE", "SUBSCRIPTION_DELETE"})
# A purchase or refund whose handling fails for a reason other than the database (a bug) is given up after this
# many tries; database errors (locked, disk full) are retried until they clear or the bot stops.
HANDLER_ATTEMPTS = 5
# Gateway close codes that mean "this bot may not connect like this" (token, shard, version, intents).
_FATAL_CLOSE_CODES = frozenset({4004, 4010, 4011, 4012, 4013, 4014})
_INTERACTION_MEMORY = 512  # raw interaction payloads kept until their handler runs (it runs within milliseconds)
POLL_DURATION = timedelta(days=7)  # how long a /survey poll stays open (Discord allows up to 32 days)
PORTAL_INTENTS = "Discord Developer Portal → your application → Bot → Privileged Gateway Intents"


class DiscordAdapter:
    """Connects one Discord bot to cohortbot.

    Args:
        deps: The wired parts (settings, secrets, writer, dispatcher, clock, engine).
        ready_timeout: Seconds ``start`` waits for the gateway to become ready.
        guild_ready_timeout: discord.py waits this long after the last ``GUILD_CREATE`` before it is ready.
        defer_after: A command still running after this many seconds is deferred ("thinking…") so its answer can
            come later than Discord's 3-second limit for the first response.
        retry_wait: The first wait before retrying an unreachable Discord API at start, or a purchase the database
            refused; it doubles up to ``retry_cap`` seconds.
        retry_cap: The longest wait between retries.
    """

    name = "discord"
    platform = Platform.DISCORD

    def __init__(
        self,
        deps: AdapterDeps,
        *,
        ready_timeout: float = 90.0,
        guild_ready_timeout: float = 2.0,
        defer_after: float = 1.5,
        retry_wait: float = 1.0,
        retry_cap: float = 30.0,
    ) -> None:
        self._deps = deps
        self._retry_wait = retry_wait
        self._retry_cap = retry_cap
        self._stopping = False
        self._settings = deps.settings
        self._config = deps.settings.discord
        self._community = deps.settings.community.name
        self._ready_timeout = ready_timeout
        self._guild_ready_timeout = guild_ready_timeout
        self._defer_after = defer_after
        self._client: discord.Client | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._interactions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._reported: set[str] = set()
        self._button: CommandButtonFactory = command_button_class(self._on_button)
        self._saved_routes: tuple[str, yarl.URL] | None = None
        self._tree: discord.app_commands.CommandTree[Any] | None = None
        # Poll votes are stored one at a time in gateway order: a vote removed and cast again must end as cast.
        self._votes = asyncio.Lock()

    # --------------------------------------------------------------------------------------------------------
    # Lifecycle

    @property
    def client(self) -> discord.Client:
        """The running discord.py client.

        Raises:
            RuntimeError: Before ``start``.
        """
        if self._client is None:
            raise RuntimeError("the Discord adapter is not started")
        return self._client

    def intents(self) -> discord.Intents:
        """Gateway intents: servers, members, messages, reactions; message content only when the owner asked.

        ``[discord] message_content = true`` or ``[storage] store_text = true`` asks for it; without it Discord
        blanks each message's text, attachments and embeds.
        """
        intents = discord.Intents.none()
        intents.guilds = True
        intents.members = True
        intents.guild_messages = True
        intents.guild_reactions = True
        intents.message_content = self._config.message_content or self._settings.storage.store_text
        intents.guild_polls = True  # votes on /survey poll (not privileged)
        return intents

    def _privileged_intents(self) -> list[str]:
        names = ["Server Members Intent (to log joins and leaves)"]
        if self._config.message_content:
            names.append("Message Content Intent (because [discord] message_content = true)")
        elif self._settings.storage.store_text:
            names.append("Message Content Intent (because [storage] store_text = true)")
        return names

    def _route_to_configured_api(self) -> None:
        # discord.py has no per-client setting for the REST base or the gateway URL: these class attributes are
        # the library's only hook, so the adapter sets them from [discord] api_base_url / gateway_url (for REST or
        # gateway proxies) and restores them on stop. One Discord bot per process is assumed.
        self._saved_routes = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self._config.api_base_url.rstrip("/")
        if self._config.gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self._config.gateway_url)

    def _restore_routes(self) -> None:
        if self._saved_routes is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved_routes
            self._saved_routes = None

    def _build_client(self) -> discord.Client:
        # The bot never joins voice channels; without this discord.py warns at every start that voice support
        # libraries are missing, which sends owners looking for a problem that is not there.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        options: dict[str, Any] = {
            "intents": self.intents(),
            "enable_debug_events": True,
            "guild_ready_timeout": self._guild_ready_timeout,
            # Replies never ping anyone, whatever a display name or a digest line contains.
            "allowed_mentions": discord.AllowedMentions.none(),
            # Events are translated from the raw payloads: the library's message cache would only cost memory.
            "max_messages": None,
        }
        shards = self._config.shards
        client: discord.Client
        if self._config.shard_count is not None:
            # [discord] shard_count/shard_ids: this process connects its share; the other processes the rest.
            ids = list(self._config.shard_ids) if self._config.shard_ids is not None else None
            client = _ShardedClient(self._on_raw_frame, shard_count=self._config.shard_count, shard_ids=ids, **options)
        elif shards == "auto":
            client = _ShardedClient(self._on_raw_frame, shard_count=None, **options)
        elif shards > 1:
            client = _ShardedClient(self._on_raw_frame, shard_count=shards, **options)
        else:
            client = _Client(self._on_raw_frame, **options)
        client.event(self.on_ready)
        client.event(self.on_resumed)
        self._tree = build_tree(
            client,
            self._deps.dispatcher.commands,
            guild_ids=self._config.guild_ids,
            courses=self._settings.courses,
            admin_role_ids=self._config.admin_role_ids,
            on_command=self._on_command,
        )
        client.add_dynamic_items(self._button)  # type: ignore[arg-type]
        return client

    async def on_ready(self) -> None:
        """discord.py's ready event (also after a fresh re-identify, which counts as a reconnect)."""
        if self._ready.is_set():
            self._reconnected("a new session")
        self._ready.set()

    async def on_resumed(self) -> None:
        """discord.py's resumed event: the gateway connection dropped and the session was resumed."""
        self._reconnected("the session resumed")

    def _reconnected(self, how: str) -> None:
        log.info("Discord gateway reconnected (%s)", how)
        self._deps.telemetry.reconnected("discord")

    def connection_problem(self) -> str | None:
        """For ``/healthz``: why the gateway is not connected (closed, a shard down, reconnecting); None if alive."""
        client = self._client
        if client is None or self._connect_task is None:
            return "the Discord adapter is not running"
        if self._connect_task.done():
            return "the Discord gateway connection ended"
        if client.is_closed() or not client.is_ready():
            return "the Discord gateway is not connected"
        if isinstance(client, discord.AutoShardedClient):
            down = sorted(shard_id for shard_id, shard in client.shards.items() if shard.is_closed())
            if down:
                return f"Discord shard(s) {', '.join(map(str, down))} not connected"
            return None
        # Between a dropped connection and the reconnect discord.py keeps the old websocket, closed.
        if client.ws is None or not client.ws.open:
            return "the Discord gateway is not connected"
        return None

    async def start(self) -> None:
        """Log in, register the slash commands in each guild, connect to the gateway and wait until ready.

        Raises:
            AdapterStartError: No token, a rejected token, a refused privileged intent, or an API that refuses
                the login (4xx); the message says what to fix. An unreachable API or gateway is retried instead.
        """
        token = self._deps.secrets.discord_token
        if not token:
            raise AdapterStartError("[discord] enabled = true but COHORTBOT_DISCORD_TOKEN is not set")
        self._route_to_configured_api()
        self._ready.clear()
        self._stopping = False
        client = self._client = self._build_client()
        try:
            await self._login(client, token)
            await self._sync_commands()
            await self._connect(client)
        except BaseException:
            # Also a signal during start (cancelled while Discord was unreachable): release the client here.
            await self._abort()
            raise
        self._check_guilds()
        log.info(
            "Discord connected as %s in %d of %d configured servers",
            client.user,
            sum(1 for g in self._config.guild_ids if client.get_guild(g)),
            len(self._config.guild_ids),
        )

    async def _login(self, client: discord.Client, token: str) -> None:
        """Log in over REST, retrying with back-off while the Discord API cannot be reached.

        Raises:
            AdapterStartError: Discord rejected the token (retrying cannot help).
        """
        backoff = Backoff(self._retry_wait, self._retry_cap)
        while True:
            try:
                await client.login(token)
                return
            except discord.LoginFailure as exc:
                raise AdapterStartError(
                    "Discord rejected the bot token: copy it again from the Developer Portal → Bot → Reset Token "
                    "into COHORTBOT_DISCORD_TOKEN"
                ) from exc
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                if isinstance(exc, discord.HTTPException) and 400 <= exc.status < 500 and exc.status != 429:
                    # Reached, but refused (a wrong api_base_url, a proxy that forbids it): waiting will not help.
                    raise AdapterStartError(
                        f"the Discord API at {discord.http.Route.BASE} refused the login: {exc.status} "
                        f"{exc.text or exc.response.reason}; check [discord] api_base_url"
                    ) from exc
                wait = backoff.next()
                log.warning(
                    "Discord API unreachable at %s: %s; retrying in %g s",
                    discord.http.Route.BASE,
                    describe(exc),
                    wait,
                )
                # Each login opens a new HTTP session over the client's connector, and closing the failed one
                # closes that connector too: let the next login make a fresh one (discord.py does when MISSING).
                await client.http.close()
                client.http.connector = discord.utils.MISSING
                await asyncio.sleep(wait)

    async def _connect(self, client: discord.Client) -> None:
        """Connect to the gateway and wait for READY, retrying with back-off while the gateway cannot be reached.

        Once connected, discord.py reconnects by itself; a failure of the very first connection ends its connect
        task instead (discord.py 2.7), so that is retried here.

        Raises:
            AdapterStartError: The gateway refused the token or the privileged intents (retrying cannot help).
        """
        backoff = Backoff(self._retry_wait, self._retry_cap)
        while True:
            self._connect_task = asyncio.create_task(client.connect(reconnect=True), name="cohortbot-discord-gateway")
            self._connect_task.add_done_callback(self._gateway_ended)
            error = await self._wait_ready(self._connect_task)
            if error is None:
                return
            if _fatal_gateway_error(error):
                raise self._start_error(error) from error
            wait = backoff.next()
            log.warning(
                "Discord gateway unreachable at %s: %s; retrying in %g s",
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                describe(_root_cause(error)),
                wait,
            )
            await asyncio.sleep(wait)

    async def _wait_ready(self, connecting: asyncio.Task[None]) -> BaseException | None:
        """Wait for READY; returns None once ready, or the error the connection ended with before that."""
        ready = asyncio.create_task(self._ready.wait())
        waited = 0.0
        try:
            while True:
                done, _ = await asyncio.wait(
                    {ready, connecting}, timeout=self._ready_timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if ready in done:
                    return None
                if connecting in done:
                    return connecting.exception() or RuntimeError("the gateway connection ended before READY")
                waited += self._ready_timeout
                log.warning(
                    "Discord gateway at %s not ready after %.0f s; discord.py keeps retrying (check the network "
                    "and [discord] gateway_url)",
                    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                    waited,
                )
        finally:
            ready.cancel()

    def supervised_tasks(self) -> dict[str, asyncio.Task[None]]:
        """The gateway connection; the app exits non-zero when it ends on its own (discord.py gave up)."""
        return {"Discord gateway": self._connect_task} if self._connect_task is not None else {}

    def _gateway_ended(self, task: asyncio.Task[None]) -> None:
        # discord.py reconnects by itself; it gives up only on errors a restart cannot fix (token revoked,
        # intents withdrawn in the portal). Say so loudly instead of going silent.
        if task.cancelled():
            return
        error = task.exception()  # also marks it retrieved: no "exception was never retrieved" noise
        if error is not None and self._ready.is_set():
            log.error("the Discord gateway connection ended for good: %s", self._start_error(error))

    def _start_error(self, error: BaseException | None) -> AdapterStartError:
        if isinstance(error, discord.PrivilegedIntentsRequired):
            return AdapterStartError(
                "Discord refused the privileged gateway intents the bot asks for: "
                + " and ".join(self._privileged_intents())
                + f". Turn them on in the {PORTAL_INTENTS}, then start again."
            )
        if isinstance(error, discord.ConnectionClosed) and error.code == 4004:
            return AdapterStartError("Discord rejected the bot token at the gateway: check COHORTBOT_DISCORD_TOKEN")
        if error is not None:
            return AdapterStartError(f"the Discord gateway connection failed: {error!r}")
        return AdapterStartError("the Discord gateway connection ended before it was ready")

    async def _abort(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._connect_task is not None:
            self._connect_task.cancel()
            await asyncio.gather(self._connect_task, return_exceptions=True)
            self._connect_task = None
        self._restore_routes()

    async def _sync_commands(self) -> None:
        tree = self._tree
        if tree is None:
            return
        for guild_id in self._config.guild_ids:
            try:
                await tree.sync(guild=discord.Object(id=guild_id))
            except discord.Forbidden as exc:
                # Logging still works without commands; the owner learns how to fix the invite.
                log.error(
                    "cannot register slash commands in server %s (%s): check that the bot is in that server and "
                    "invite it again with the scopes bot and applications.commands (see docs/discord.md)",
                    guild_id,
                    exc.text or exc.status,
                )
            except discord.HTTPException as exc:
                log.error("registering slash commands in server %s failed: %s", guild_id, exc)

    def _check_guilds(self) -> None:
        for guild_id in self._config.guild_ids:
            if self.client.get_guild(guild_id) is None:
                log.warning(
                    "the bot is not a member of Discord server %s from [discord] guild_ids: invite it (see "
                    "docs/discord.md) or remove the id",
                    guild_id,
                )

    async def stop(self) -> None:
        """Finish in-flight work, close the connection; every event already received has been put to the writer."""
        if self._client is None:
            return
        self._stopping = True  # a purchase waiting to retry gives up (and says so) instead of holding the shutdown
        # Events are put synchronously as frames arrive; what can still be running are purchases and commands.
        await self._drain(10.0)
        await self._client.close()
        if self._connect_task is not None:
            await asyncio.gather(self._connect_task, return_exceptions=True)
            self._connect_task = None
        await self._drain(5.0)
        self._client = None
        self._restore_routes()

    async def _drain(self, grace: float) -> None:
        while self._tasks:
            pending = set(self._tasks)
            _, still = await asyncio.wait(pending, timeout=grace)
            if still:
                log.warning("%d Discord tasks still running at shutdown were cancelled", len(still))
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
                return

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self._track(asyncio.get_running_loop().create_task(self._guarded(coro, name), name=name))

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Remember a task until it ends, so ``stop`` can let it finish."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guarded(coro: Awaitable[Any], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # one failing event must never take the adapter down
            log.exception("Discord task %s failed", name)

    # --------------------------------------------------------------------------------------------------------
    # Gateway events

    def _on_raw_frame(self, raw: str | bytes) -> None:
        """Handle one decoded gateway frame. Runs inside discord.py's receive loop: must not raise or block."""
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
            if not any(name in text for name in _RAW_EVENTS):
                return
            frame = json.loads(text)
            if frame.get("op") != 0 or not isinstance(frame.get("d"), dict):
                return
            self.handle_dispatch(str(frame.get("t")), frame["d"])
        except Exception:
            log.exception("could not handle a Discord gateway frame")

    def handle_dispatch(self, event: str, payload: dict[str, Any]) -> None:
        """Translate one gateway dispatch (``t`` and ``d``) and hand the result on.

        Activity goes to the writer at once; purchases and refunds run as tasks (they commit, then change roles).
        """
        now = self._deps.clock.now()
        if event == "INTERACTION_CREATE":
            self._remember_interaction(payload)
            return
        if event.startswith("ENTITLEMENT_") or event in _SUBSCRIPTION_EVENTS:
            self._spawn(self._retrying_payment_event(event, payload), f"discord-{event.lower()}")
            return
        if not translate.in_guilds(payload, self._config.guild_ids):
            return
        if event.startswith("MESSAGE_POLL_VOTE_"):
            vote = translate.poll_vote(payload, removed=event == "MESSAGE_POLL_VOTE_REMOVE")
            if vote is not None:
                self._spawn(self._store_vote(vote), "discord-poll-vote")
            return
        activity: ActivityEvent | None = None
        if event == "MESSAGE_CREATE":
            activity = translate.message_event(
                payload, community=self._community, store_text=self._settings.storage.store_text, channels=self._channel
            )
        elif event in ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"):
            activity = translate.reaction_event(
                payload,
                community=self._community,
                added=event == "MESSAGE_REACTION_ADD",
                now=now,
                self_id=self._self_id(),
                channels=self._channel,
            )
        elif event == "GUILD_MEMBER_ADD":
            activity = translate.member_joined(payload, community=self._community, now=now)
        elif event == "GUILD_MEMBER_REMOVE":
            activity = translate.member_left(payload, community=self._community, now=now)
        if activity is not None:
            self._put(activity)

    async def _store_vote(self, vote: PollVote) -> None:
        """Store a poll vote; Discord sends it once, so a database error is retried like an entitlement's."""
        what = f"Discord poll vote of user {vote.user_id} on message {vote.poll_id}"
        backoff = Backoff(self._retry_wait, self._retry_cap)
        async with self._votes:  # tasks take the lock in the order they were spawned: gateway order
            while True:
                try:
                    community_id = self._deps.dispatcher.community_id
                    now = self._deps.clock.now()
                    await asyncio.to_thread(receive_poll_vote, self._deps.engine, community_id, vote, now=now)
                    return
                except Exception as exc:
                    if not waiting_can_fix(exc) and backoff.attempts + 1 >= HANDLER_ATTEMPTS:
                        log.error("%s failed %d times (%s) and is given up", what, HANDLER_ATTEMPTS, describe(exc))
                        return
                    wait = backoff.next()
                    log.warning("storing %s failed (%s); retrying in %g s", what, describe(exc), wait)
                    if not await sleep_unless(lambda: self._stopping, wait):
                        log.error("%s was not stored before the bot stopped", what)
                        return

    def _put(self, event: ActivityEvent) -> None:
        try:
            self._deps.writer.put_nowait(event)
        except asyncio.QueueFull:
            # The database is far behind: wait for room without blocking the gateway (heartbeats must go on).
            self._spawn(self._deps.writer.put(event), "discord-put")

    def _self_id(self) -> str | None:
        user = self._client.user if self._client is not None else None
        return str(user.id) if user is not None else None

    def _channel(self, channel_id: str) -> ChannelRef | None:
        if self._client is None:
            return None
        channel = self._client.get_channel(int(channel_id))
        if isinstance(channel, discord.Thread):
            return ChannelRef(channel_id, name=channel.name, parent_id=str(channel.parent_id))
        name = getattr(channel, "name", None)
        return ChannelRef(channel_id, name=name) if channel is not None else None

    def _remember_interaction(self, payload: dict[str, Any]) -> None:
        self._interactions[str(payload["id"])] = payload
        while len(self._interactions) > _INTERACTION_MEMORY:
            self._interactions.popitem(last=False)

    async def _retrying_payment_event(self, event: str, payload: dict[str, Any]) -> None:
        """Handle an entitlement or subscription event until it is stored (Discord sends it once).

        A database error must not drop it. One member's events are handled one at a time, in the order they
        arrived (the lock hands itself on first come, first served): a subscription's period, its entitlement and
        its end are stored in Discord's order.
        """
        async with self._deps.dispatcher.sale_locks(f"discord-payments:{payload.get('user_id')}"):
            await self._retrying(event, payload)

    async def _retrying(self, event: str, payload: dict[str, Any]) -> None:
        backoff = Backoff(self._retry_wait, self._retry_cap)
        sku = payload.get("sku_id") or ",".join(str(s) for s in payload.get("sku_ids") or ())
        what = f"Discord {event} {payload.get('id')} (user {payload.get('user_id')}, SKU {sku})"
        while True:
            try:
                if event in _SUBSCRIPTION_EVENTS:
                    await self._on_subscription(event, payload)
                else:
                    await self._on_entitlement(event, payload)
                return
            except Exception as exc:
                if not waiting_can_fix(exc) and backoff.attempts + 1 >= HANDLER_ATTEMPTS:
                    log.error(
                        "%s failed %d times (%s) and is given up: record it with /grant or refund it",
                        what,
                        HANDLER_ATTEMPTS,
                        describe(exc),
                        exc_info=exc,
                    )
                    return
                wait = backoff.next()
                log.error(
                    "storing %s failed (%s); retrying in %g s",
                    what,
                    describe(exc),
                    wait,
                    exc_info=exc if backoff.attempts == 1 else None,  # the traceback once, not every retry
                )
                if not await sleep_unless(lambda: self._stopping, wait):
                    log.error("%s was not stored before the bot stopped: record it with /grant or refund it", what)
                    return

    async def _on_entitlement(self, event: str, payload: dict[str, Any]) -> None:
        now = self._deps.clock.now()
        dispatcher = self._deps.dispatcher
        user_id = payload.get("user_id")
        member = MemberRef(str(user_id)) if user_id else None
        course = translate.course_for_sku(payload.get("sku_id"), self._settings.courses)
        if event == "ENTITLEMENT_DELETE" or payload.get("deleted"):
            refund = translate.entitlement_refund(
                payload, community=self._community, now=now, reason="Discord entitlement deleted"
            )
            # A refunded subscription ends now, renewals included, before the refund takes the role away.
            ending = await self._end_subscription(payload, course, at=now)
            outcome = await record_refund(dispatcher, refund, member, self)
            if ending is not None:
                await note_access_lost(dispatcher, ending, now=now)
            log.info(
                "Discord entitlement %s deleted: refund %s",
                refund.charge_id,
                "recorded" if outcome.created else "already recorded",
            )
            return
        purchase = translate.entitlement_purchase(
            payload, community=self._community, courses=self._settings.courses, now=now
        )
        if purchase is None:
            log.info(
                "ignored Discord entitlement %s: SKU %s is not a course's discord_sku_id",
                payload.get("id"),
                payload.get("sku_id"),
            )
            return
        ending = None
        if purchase.access_ends_at is not None:
            # The subscription (and its renewal purchases) ends with its entitlement: recorded before the
            # entitlement's end is acted on, so no renewal keeps the role.
            ending = await self._end_subscription(payload, course, at=purchase.access_ends_at)
        for notice in await receive_entitlement(dispatcher, purchase, self):
            await self._tell_member(purchase.member.user_id, notice)
        if ending is not None and purchase.access_ends_at is not None and purchase.access_ends_at <= now:
            # The role is gone and she was told how to come back: the subscriptions job does neither again.
            await note_access_lost(dispatcher, ending, now=now)

    async def _end_subscription(
        self, payload: dict[str, Any], course: CourseSettings | None, *, at: datetime
    ) -> SubscriptionRecord | None:
        user_id = payload.get("user_id")
        if course is None or not user_id:
            return None
        return await end_by_entitlement(
            self._deps.dispatcher,
            platform=self.name,
            user_id=str(user_id),
            course_id=course.id,
            at=at,
            subscription_ref=translate.entitlement_subscription_id(payload),
        )

    async def _on_subscription(self, event: str, payload: dict[str, Any]) -> None:
        try:
            update = translate.subscription_update(
                event, payload, community=self._community, courses=self._settings.courses, now=self._deps.clock.now()
            )
        except EventError as exc:
            log.warning("ignored Discord %s %s: %s", event, payload.get("id"), exc)
            return
        if update is None:
            log.info(
                "ignored Discord %s %s: no SKU of %s is a course's discord_sku_id (or no user, or unknown status %s)",
                event,
                payload.get("id"),
                payload.get("sku_ids"),
                payload.get("status"),
            )
            return
        await receive_subscription(self._deps.dispatcher, update)

    async def _tell_member(self, user_id: str, reply: Reply) -> None:
        try:
            await self.send(OutgoingMessage(platform=self.name, target=user_id, reply=reply, direct=True))
        except DeliveryError as exc:
            log.info("could not DM Discord user %s: %s", user_id, exc.reason)

    # --------------------------------------------------------------------------------------------------------
    # Commands and buttons

    async def _on_command(self, interaction: discord.Interaction[Any], spec: CommandSpec) -> None:
        payload = self._interactions.pop(str(interaction.id), None)
        if payload is None:
            log.warning("no gateway payload for interaction %s (/%s)", interaction.id, spec.name)
            return
        invocation = translate.command_invocation(payload, community=self._community, now=self._deps.clock.now())
        await self._run(interaction, payload, invocation, defer_ephemeral=spec.private or spec.admin)

    async def _on_button(self, interaction: discord.Interaction[Any]) -> None:
        payload = self._interactions.pop(str(interaction.id), None)
        invocation = (
            translate.button_invocation(payload, community=self._community, now=self._deps.clock.now())
            if payload is not None
            else None
        )
        if payload is None or invocation is None:
            await interaction.response.send_message("This button no longer works.", ephemeral=True)
            return
        spec = self._deps.dispatcher.get(invocation.name)
        await self._run(interaction, payload, invocation, defer_ephemeral=spec is None or spec.private or spec.admin)

    async def _run(
        self,
        interaction: discord.Interaction[Any],
        payload: dict[str, Any],
        invocation: CommandInvocation,
        *,
        defer_ephemeral: bool,
    ) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._track(current)  # discord.py runs this callback in its own task; stop() waits for it
        admin = translate.is_admin(translate.interaction_caller(payload), self._config.admin_role_ids)
        work = asyncio.ensure_future(self._deps.dispatcher.dispatch(invocation, is_admin=admin, actions=self))
        done, _ = await asyncio.wait({work}, timeout=self._defer_after)
        deferred: bool | None = None
        try:
            if not done:
                # Discord drops an interaction not answered within 3 s; a slow command (a report with a chart)
                # shows "thinking…" and answers with a follow-up when it is done.
                await interaction.response.defer(ephemeral=defer_ephemeral, thinking=True)
                deferred = defer_ephemeral
            reply = await work
            try:
                await respond(interaction, reply, self._button, deferred_ephemeral=deferred)
            except CapabilityError as exc:
                log.error("/%s answered something Discord cannot show: %s", invocation.name, exc)
                fallback = Reply.say(f"Sorry, /{invocation.name} cannot answer on Discord.", private=True)
                await respond(interaction, fallback, self._button, deferred_ephemeral=deferred)
        except discord.HTTPException as exc:
            # Usually an interaction that expired (10062) or was answered elsewhere; nothing to retry.
            log.warning("could not answer /%s on Discord: %s", invocation.name, exc)

    # --------------------------------------------------------------------------------------------------------
    # PlatformActions

    def _guild_for_role(self, role_id: int) -> discord.Guild | None:
        guilds = [g for g in (self.client.get_guild(i) for i in self._config.guild_ids) if g is not None]
        for guild in guilds:
            if guild.get_role(role_id) is not None:
                return guild
        return guilds[0] if guilds else None

    async def _member(self, guild: discord.Guild, user_id: str) -> discord.Member:
        return guild.get_member(int(user_id)) or await guild.fetch_member(int(user_id))

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Give the course's role (``discord_role_id``) to the member."""
        return await self._change_role(member, course, add=True)

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Take the course's role away from the member."""
        return await self._change_role(member, course, add=False)

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Discord has no bot-initiated refunds.

        Raises:
            CapabilityError: Always.
        """
        raise CapabilityError(
            "Discord purchases are refunded through Discord support; the entitlement deletion will remove access"
        )

    async def _change_role(self, member: MemberRef, course: CourseSettings, *, add: bool) -> AccessResult:
        role_id = course.discord_role_id
        if role_id is None:
            return AccessResult(ok=True, detail=f"{course.title} has no Discord role (no discord_role_id)")
        guild = self._guild_for_role(role_id)
        if guild is None:
            return AccessResult(ok=False, problem="the bot is not in any server from [discord] guild_ids")
        role = guild.get_role(role_id) or discord.Object(id=role_id)
        verb = "give" if add else "take away"
        try:
            target = await self._member(guild, member.user_id)
            reason = f"cohortbot: {'bought' if add else 'refunded'} {course.id}"
            if add:
                await target.add_roles(role, reason=reason)
            else:
                await target.remove_roles(role, reason=reason)
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_ROLE:
                problem = f"the role {role_id} of course {course.id!r} does not exist: fix discord_role_id"
                self._report_problem(f"role-missing:{role_id}", problem, guild)
                return AccessResult(ok=False, problem=problem)
            if add:
                return AccessResult(ok=False, problem=f"user {member.user_id} is not a member of {guild.name}")
            return AccessResult(ok=True, detail="the member has left the server")
        except discord.Forbidden as exc:
            role_name = getattr(role, "name", str(role_id))
            problem = (
                f"the bot may not {verb} the role {role_name!r} in {guild.name}: give the bot the Manage Roles "
                f"permission and drag its role above {role_name!r} in Server Settings → Roles"
            )
            self._report_problem(f"manage-roles:{guild.id}:{role_id}", f"{problem} (Discord said: {exc.text})", guild)
            return AccessResult(ok=False, problem=problem)
        except discord.HTTPException as exc:
            return AccessResult(ok=False, problem=f"Discord refused the role change: {exc}")
        detail = f"You now have the {getattr(role, 'name', 'course')} role in {guild.name}." if add else "Role removed."
        return AccessResult(ok=True, detail=detail)

    # --------------------------------------------------------------------------------------------------------
    # SurveyActions (/survey)

    def _messageable(self, channel_id: str) -> discord.abc.Messageable:
        found = self.client.get_channel(int(channel_id))
        return (
            found
            if isinstance(found, discord.abc.Messageable)
            else self.client.get_partial_messageable(int(channel_id))
        )

    async def post_survey(self, channel: ChannelRef, reply: Reply) -> PostedSurvey:
        """Post a survey question with its buttons in the channel /survey was run in.

        Raises:
            DeliveryError: The bot may not post there.
        """
        try:
            sent = await send_reply(self._messageable(channel.channel_id), reply, self._button)
        except discord.HTTPException as exc:
            raise DeliveryError(f"Discord refused the message in channel {channel.channel_id}: {exc.text}") from exc
        return PostedSurvey(str(sent[-1].id))

    async def post_poll(self, channel: ChannelRef, question: str, options: tuple[str, ...]) -> PostedSurvey:
        """Post a native poll (one answer each, open a week); its votes arrive as MESSAGE_POLL_VOTE_* events.

        Raises:
            DeliveryError: Discord refused the poll (no Send Polls permission there).
        """
        poll = discord.Poll(question=question, duration=POLL_DURATION, multiple=False)
        for option in options:
            poll.add_answer(text=option)
        try:
            message = await self._messageable(channel.channel_id).send(poll=poll)
        except discord.HTTPException as exc:
            raise DeliveryError(f"Discord refused the poll in channel {channel.channel_id}: {exc.text}") from exc
        return PostedSurvey(str(message.id), str(message.id))  # votes name the poll's message

    # --------------------------------------------------------------------------------------------------------
    # AccessReconciler (the scheduler's daily check)

    async def access_holders(self, course: CourseSettings) -> frozenset[str] | None:
        """Everyone holding the course's role, from the member cache (the Server Members intent keeps it whole)."""
        if course.discord_role_id is None:
            return frozenset()
        guild = self._guild_for_role(course.discord_role_id)
        role = guild.get_role(course.discord_role_id) if guild is not None else None
        if role is None or guild is None or not guild.chunked:
            return None  # unknown role or an incomplete cache: check buyers one by one instead
        return frozenset(str(m.id) for m in role.members if not m.bot)

    async def ensure_access(self, user_id: str, course: CourseSettings, *, should_have: bool) -> AccessFix:
        """Give or take the course role so that it matches ``should_have``."""
        role_id = course.discord_role_id
        if role_id is None:
            return AccessFix(changed=False)
        guild = self._guild_for_role(role_id)
        if guild is None:
            return AccessFix(changed=False, problem="the bot is not in any server from [discord] guild_ids")
        try:
            member = await self._member(guild, user_id)
        except discord.NotFound:
            if should_have:
                return AccessFix(changed=False, problem=f"bought it but is no longer a member of {guild.name}")
            return AccessFix(changed=False)
        if any(r.id == role_id for r in member.roles) == should_have:
            return AccessFix(changed=False)
        result = await self._change_role(MemberRef(user_id), course, add=should_have)
        return AccessFix(changed=result.ok, problem=result.problem)

    def _report_problem(self, key: str, problem: str, guild: discord.Guild | None) -> None:
        """Tell the admins once per kind of problem (log warning + DM to the server owner); never retried."""
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning("Discord needs an admin: %s", problem)
        if guild is not None and guild.owner_id is not None:
            note = Reply.say(f"cohortbot needs a fix in {guild.name}: {problem}.", "I will not repeat this message.")
            self._spawn(self._tell_member(str(guild.owner_id), note), "discord-admin-notice")

    # --------------------------------------------------------------------------------------------------------
    # Sending

    async def send(self, message: OutgoingMessage) -> None:
        """Post to a channel, or DM a member when ``message.direct`` (rate limits are waited out by discord.py).

        Raises:
            DeliveryError: The member does not accept DMs from the bot (``unreachable_user``), the channel is gone,
                or the bot lacks permission there (also reported to the admins once).
        """
        client = self.client
        target = int(message.target)
        try:
            channel: discord.abc.Messageable
            if message.direct:
                channel = await client.create_dm(discord.Object(id=target))
            else:
                found = client.get_channel(target)
                channel = (
                    found if isinstance(found, discord.abc.Messageable) else client.get_partial_messageable(target)
                )
            await send_reply(channel, message.reply, self._button)
        except discord.Forbidden as exc:
            if exc.code == CANNOT_DM_USER or message.direct:
                raise DeliveryError(
                    f"Discord user {target} does not accept direct messages from the bot", unreachable_user=True
                ) from exc
            problem = (
                f"the bot may not post in channel {target}: give it View Channel and Send Messages (and Attach "
                "Files for charts) there"
            )
            self._report_problem(f"send:{target}", problem, self._guild_of_channel(target))
            raise DeliveryError(problem) from exc
        except discord.NotFound as exc:
            raise DeliveryError(f"Discord channel or user {target} does not exist") from exc
        except discord.HTTPException as exc:
            if exc.status >= 500:
                raise  # Discord is having trouble (discord.py already retried): a later attempt may work
            raise DeliveryError(f"Discord refused the message to {target}: {exc.text or exc.status}") from exc

    def _guild_of_channel(self, channel_id: int) -> discord.Guild | None:
        channel = self.client.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild if isinstance(guild, discord.Guild) else None


def _fatal_gateway_error(error: BaseException) -> bool:
    """Whether the gateway refused the bot (token, intents, sharding): a retry would be refused again."""
    if isinstance(error, discord.PrivilegedIntentsRequired | discord.LoginFailure):
        return True
    return isinstance(error, discord.ConnectionClosed) and error.code in _FATAL_CLOSE_CODES


def _root_cause(error: BaseException) -> BaseException:
    """The network error behind what discord.py raised (it can fail on its own state while handling it)."""
    while not isinstance(error, OSError | aiohttp.ClientError | TimeoutError | discord.GatewayNotFound):
        nested = error.__cause__ or error.__context__
        if nested is None:
            return error
        error = nested
    return error


RawFrameHook = Callable[[str | bytes], None]


class _ClientMixin:
    """Hands every decoded gateway frame to the adapter, synchronously, before discord.py handles it."""

    _raw_hook: RawFrameHook

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        if event == "socket_raw_receive":
            self._raw_hook(args[0])
            return  # no listener needs it; avoids scheduling a task per frame
        super().dispatch(event, *args, **kwargs)  # type: ignore[misc]


class _Client(_ClientMixin, discord.Client):
    def __init__(self, hook: RawFrameHook, **options: Any) -> None:
        self._raw_hook = hook
        super().__init__(**options)


class _ShardedClient(_ClientMixin, discord.AutoShardedClient):
    def __init__(self, hook: RawFrameHook, **options: Any) -> None:
        self._raw_hook = hook
        super().__init__(**options)
