"""Commands and buttons: which chats are answered, who is an admin, and turning a message into an invocation.

A command arrives as a message (``/stats``, ``/stats@cohortbot``, ``/start stats`` from a deep link) or a button
press (its callback data is a command line). In a group the bot answers only in the community's, the courses' and
the digest's chats; anywhere else it stays silent. The dispatcher decides the answer; the adapter delivers it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from telegram import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    CallbackQuery,
    Chat,
    Message,
)
from telegram.error import TelegramError

from bot.adapters.telegram.translate import (
    ADMIN_STATUSES,
    ParsedCommand,
    callback_command,
    command_invocation,
    parse_command,
)
from bot.core.commands.base import CommandSpec
from storage.events import CommandInvocation

if TYPE_CHECKING:
    from bot.adapters.telegram.adapter import TelegramAdapter

log = logging.getLogger(__name__)


class CommandRouter:
    """Answers commands and button presses for the adapter.

    Args:
        adapter: The adapter (its client, settings and dispatcher; it delivers the replies).
    """

    def __init__(self, adapter: TelegramAdapter) -> None:
        self.adapter = adapter
        self.config = adapter.config
        self.dispatcher = adapter.deps.dispatcher
        settings = adapter.deps.settings
        # Where commands are answered besides private chats: the community's chats, the courses' chats and the
        # digest's chats. In any other group the bot was added to, it stays silent (logged once per chat).
        self.command_chat_ids = frozenset(
            (
                *self.config.chat_ids,
                *(c.telegram_chat_id for c in settings.courses if c.telegram_chat_id is not None),
                *settings.digest.telegram_chat_ids,
            )
        )
        self._silent_in: set[int] = set()
        self._admin_cache: dict[tuple[int, int], tuple[float, bool]] = {}

    def command_in(self, message: Message) -> ParsedCommand | None:
        """The command a message runs, if it is one for us.

        In a group a bare ``/name`` is ours only if we have that command (other bots may share the group); in a
        private chat every ``/name`` is ours (unknown ones get "I don't know").
        """
        command = parse_command(message.text, self.adapter.bot_username)
        if command is None:
            return None
        if message.chat.type == Chat.PRIVATE or command.addressed:
            return command
        return command if self.dispatcher.get(command.name) is not None else None

    def answers_in(self, chat: Chat | None) -> bool:
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
        spec = self.dispatcher.get(command.name)
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
        return parse_command(encoded.decode("utf-16-le"), self.adapter.bot_username) or command

    async def run_command(self, message: Message, command: ParsedCommand) -> None:
        """Run a command sent as a message and answer it (anonymous senders are told how to ask)."""
        user = message.from_user
        chat = message.chat
        thread_id = message.message_thread_id if message.is_topic_message else None
        if user is None or message.sender_chat is not None:
            await self.adapter.deliver_text(
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
            scope=self.adapter.scope,
            thread_id=thread_id,
            options=self._member_option(message, command),
        )
        await self._dispatch_and_deliver(invocation, chat=chat, thread_id=thread_id, reply_to=message.message_id)

    def _from_deep_link(self, chat: Chat, command: ParsedCommand) -> ParsedCommand:
        """``/start stats`` (from a ``t.me/<bot>?start=stats`` link) runs ``/stats``.

        Any other start parameter (a link shared with a campaign tag) just starts the bot, rather than being
        refused as an unexpected argument.
        """
        start = self.dispatcher.get("start")
        if command.name != "start" or not command.args or (start is not None and start.options):
            return command
        target = command.args[0].lower()
        if chat.type == Chat.PRIVATE and len(command.args) == 1 and target != "start":
            spec = self.dispatcher.get(target)
            if spec is not None and not any(o.required for o in spec.options):
                return ParsedCommand(target, (), addressed=False)
        return ParsedCommand("start", (), addressed=command.addressed)

    async def button(self, query: CallbackQuery) -> None:
        """Run the command a button carries and answer it as a message."""
        # Acknowledge at once so the member's button stops spinning; the answer follows as a message.
        try:
            await self.adapter.call(None, lambda: query.answer())
        except TelegramError as exc:
            log.info("could not acknowledge a button press: %s", exc.message)
        command = callback_command(query, self.adapter.bot_username)
        if command is None:
            log.warning("ignored a button press with data %r: not a command", query.data)
            return
        message = query.message
        chat = message.chat if message is not None else None
        if not self.answers_in(chat):
            return
        thread_id = None
        if isinstance(message, Message) and message.is_topic_message:
            thread_id = message.message_thread_id
        invocation = command_invocation(
            command,
            user=query.from_user,
            chat=chat,
            occurred_at=self.adapter.deps.clock.now(),
            scope=self.adapter.scope,
            thread_id=thread_id,
        )
        await self._dispatch_and_deliver(invocation, chat=chat, thread_id=thread_id, reply_to=None)

    async def _dispatch_and_deliver(
        self, invocation: CommandInvocation, *, chat: Chat | None, thread_id: int | None, reply_to: int | None
    ) -> None:
        user_id = int(invocation.invoker.user_id)
        is_admin = await self.is_admin(user_id, chat)
        reply = await self.dispatcher.dispatch(invocation, is_admin=is_admin, actions=self.adapter)
        await self.adapter.deliver(
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
            return chat.id in self.adapter.scope.chat_ids and await self._chat_admin(chat.id, user_id)
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
            member = await self.adapter.call(None, lambda: self.adapter.app.bot.get_chat_member(chat_id, user_id))
            admin = member.status in ADMIN_STATUSES
        except TelegramError as exc:
            log.info("could not check whether user %s is an admin of chat %s: %s", user_id, chat_id, exc.message)
            return False
        if len(self._admin_cache) > 4096:
            self._admin_cache = {k: v for k, v in self._admin_cache.items() if v[0] > now}
        self._admin_cache[(chat_id, user_id)] = (now + self.adapter.admin_cache_seconds, admin)
        return admin

    async def register_commands(self) -> None:
        """Set the command menu: member commands for everyone, all commands for admins and owners."""
        specs = self.dispatcher.commands
        member = [_bot_command(s) for s in specs if not s.admin]
        everything = [_bot_command(s) for s in specs]
        scopes: list[tuple[Any, list[BotCommand]]] = [
            (BotCommandScopeDefault(), member),
            (BotCommandScopeAllChatAdministrators(), everything),
        ]
        scopes.extend((BotCommandScopeChat(owner), everything) for owner in self.config.owner_ids)
        for scope, commands in scopes:

            async def request(scope: Any = scope, commands: list[BotCommand] = commands) -> bool:
                return bool(await self.adapter.app.bot.set_my_commands(commands, scope=scope))

            try:
                await self.adapter.call(None, request)
            except TelegramError as exc:
                # An owner who never opened a chat with the bot has no chat yet; the menu is a convenience.
                log.info("could not set the command menu for %s: %s", scope.type, exc.message)


def _bot_command(spec: CommandSpec) -> BotCommand:
    description = (spec.help or spec.name)[:256]
    return BotCommand(spec.name, description)
