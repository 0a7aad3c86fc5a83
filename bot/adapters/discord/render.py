"""Rendering a platform-neutral :class:`Reply` as Discord messages and interaction responses.

Text is rendered as Discord Markdown and split at 2,000 characters (Discord's message limit); extra chunks go out
as follow-up messages. Attachments and buttons ride on the last chunk so they appear under the whole text.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

import discord

from bot.adapters.discord.markup import render_discord_markdown, split_message
from bot.core.ports import CapabilityError
from bot.core.replies import Button, Reply

from .translate import button_custom_id

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
CUSTOM_ID_LIMIT = 100
EMPTY_REPLY = "✓"  # Discord refuses a message with neither text nor files

CommandButtonFactory = Callable[[discord.ui.Button[Any]], discord.ui.Item[Any]]
"""Wraps a plain button with the ``cmd:`` custom id into the adapter's persistent (dynamic) button."""


def reply_chunks(reply: Reply) -> list[str]:
    """The reply's text as Discord Markdown, in message-sized chunks (at least one, possibly a placeholder).

    Raises:
        CapabilityError: The reply carries a Telegram invoice, which Discord cannot show.
    """
    if reply.invoice is not None:
        raise CapabilityError("Discord cannot show a Telegram Stars invoice; sell Discord courses through a SKU")
    rendered = render_discord_markdown(reply.text).strip("\n")
    if not rendered:
        return [EMPTY_REPLY] if not reply.attachments else [""]
    return split_message(rendered, MESSAGE_LIMIT)


def reply_files(reply: Reply) -> list[discord.File]:
    """Fresh :class:`discord.File` objects for the reply's attachments (a File can be sent only once)."""
    return [discord.File(io.BytesIO(a.data), filename=a.filename) for a in reply.attachments]


def build_view(buttons: Sequence[Button], command_button: CommandButtonFactory) -> discord.ui.View | None:
    """A view holding the reply's buttons, or None when there are none.

    ``command`` buttons carry ``cmd:<command line>`` as their custom id and are handled by the adapter's dynamic
    item, so they keep working after a restart; ``url`` buttons are links; ``premium`` buttons start the purchase
    of the SKU in ``value``.

    Raises:
        ValueError: A command line too long for a custom id (100 characters), or a premium value not a SKU id.
    """
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons:
        item: discord.ui.Item[Any]
        if button.kind == "url":
            item = discord.ui.Button(style=discord.ButtonStyle.link, label=button.label[:80], url=button.value)
        elif button.kind == "premium":
            if not button.value.isdigit():
                raise ValueError(f"premium button value must be a Discord SKU id, got {button.value!r}")
            # Discord draws premium buttons itself (name and price of the SKU): no label allowed.
            item = discord.ui.Button(style=discord.ButtonStyle.premium, sku_id=int(button.value))
        else:
            custom_id = button_custom_id(button.value)
            if len(custom_id) > CUSTOM_ID_LIMIT:
                raise ValueError(f"command button {button.value!r} is too long for a Discord custom id")
            style = discord.ButtonStyle.danger if button.danger else discord.ButtonStyle.primary
            item = command_button(discord.ui.Button(style=style, label=button.label[:80], custom_id=custom_id))
        view.add_item(item)
    return view


async def respond(
    interaction: discord.Interaction[Any],
    reply: Reply,
    command_button: CommandButtonFactory,
    *,
    deferred_ephemeral: bool | None = None,
) -> None:
    """Answer an interaction with ``reply``.

    Args:
        interaction: The slash command or button press.
        reply: What the handler answered; ``private`` replies are ephemeral (only the invoker sees them).
        command_button: The adapter's command-button factory.
        deferred_ephemeral: None if the interaction was not deferred, else whether the deferral was ephemeral.
    """
    chunks = reply_chunks(reply)
    view = build_view(reply.buttons, command_button)
    ephemeral = reply.private
    deferred = deferred_ephemeral is not None
    if deferred and ephemeral and not deferred_ephemeral:
        # The "thinking…" placeholder is public; a private answer must not replace it for everyone to see.
        await interaction.delete_original_response()
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        extra: dict[str, Any] = {}
        if last:
            extra["files"] = reply_files(reply)
            if view is not None:
                extra["view"] = view
        if not deferred and index == 0:
            await interaction.response.send_message(chunk or None, ephemeral=ephemeral, **extra)
        else:
            await interaction.followup.send(chunk, ephemeral=ephemeral, **extra)


async def send_reply(
    channel: discord.abc.Messageable, reply: Reply, command_button: CommandButtonFactory
) -> list[discord.Message]:
    """Post ``reply`` to a channel or DM as one message per chunk (files and buttons on the last)."""
    chunks = reply_chunks(reply)
    view = build_view(reply.buttons, command_button)
    sent: list[discord.Message] = []
    for index, chunk in enumerate(chunks):
        extra: dict[str, Any] = {}
        if index == 0 and reply.mention_role is not None:
            # The one message that may ping: the configured helpers' role, nobody else.
            chunk = f"<@&{reply.mention_role}> {chunk}"
            extra["allowed_mentions"] = discord.AllowedMentions(
                everyone=False, users=False, roles=[discord.Object(id=reply.mention_role)], replied_user=False
            )
        if index == len(chunks) - 1:
            extra["files"] = reply_files(reply)
            if view is not None:
                extra["view"] = view
        sent.append(await channel.send(chunk or None, **extra))
    return sent
