"""Rendering a neutral :class:`Reply` as Bot API calls.

A reply becomes, in order: its text as HTML messages of at most 4,096 UTF-16 code units, Telegram's measure (split
at line breaks where possible, never inside a tag or an entity), its attachments (images with ``sendPhoto`` so they
show inline, other files with ``sendDocument``), and its invoice.
Buttons go under the last text or file message as an inline keyboard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, LabeledPrice, Message, ReplyParameters
from telegram.constants import ParseMode

from bot.adapters.telegram.markup import render_telegram_html, split_html
from bot.core.ports import CapabilityError
from bot.core.replies import Attachment, Button, Invoice, Reply

MESSAGE_LIMIT: Final = 4096  # UTF-16 code units after entity parsing; we count the HTML itself, which is longer
CAPTION_LIMIT: Final = 1024
CALLBACK_DATA_LIMIT: Final = 64
INVOICE_TITLE_LIMIT: Final = 32
INVOICE_DESCRIPTION_LIMIT: Final = 255


@dataclass(frozen=True, slots=True)
class TextPart:
    """One ``sendMessage``."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None


@dataclass(frozen=True, slots=True)
class FilePart:
    """One ``sendPhoto`` (images) or ``sendDocument``."""

    attachment: Attachment
    keyboard: InlineKeyboardMarkup | None = None


@dataclass(frozen=True, slots=True)
class InvoicePart:
    """One ``sendInvoice``."""

    invoice: Invoice


Part = TextPart | FilePart | InvoicePart


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """An inline keyboard, one button per row (consecutive buttons with the same ``row`` share one).

    Raises:
        CapabilityError: A ``premium`` button (a Discord-only purchase flow), or a command line longer than the
            64 bytes Telegram allows in callback data.
    """
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    previous: Button | None = None
    for button in buttons:
        if rows and previous is not None and button.row is not None and previous.row == button.row:
            line = rows.pop()
        else:
            line = []
        previous = button
        rows.append(line)
        if button.kind == "url":
            line.append(InlineKeyboardButton(button.label, url=button.value))
        elif button.kind == "command":
            if len(button.value.encode()) > CALLBACK_DATA_LIMIT:
                raise CapabilityError(
                    f"the button {button.label!r} runs {button.value!r}, longer than the {CALLBACK_DATA_LIMIT} bytes "
                    "a Telegram button can carry"
                )
            line.append(InlineKeyboardButton(button.label, callback_data=button.value))
        else:
            raise CapabilityError(f"Telegram has no {button.kind} buttons (the button {button.label!r})")
    return InlineKeyboardMarkup(rows)


def plan(reply: Reply) -> list[Part]:
    """The calls that deliver ``reply``, in order.

    Raises:
        CapabilityError: The reply has a button Telegram cannot show.
    """
    markup = keyboard(reply.buttons)
    parts: list[Part] = []
    html = render_telegram_html(reply.text)
    if html.strip():
        parts.extend(TextPart(chunk) for chunk in split_html(html, MESSAGE_LIMIT) if chunk.strip())
    parts.extend(FilePart(attachment) for attachment in reply.attachments)
    if markup is not None:
        for index in range(len(parts) - 1, -1, -1):
            part = parts[index]
            if isinstance(part, TextPart):
                parts[index] = TextPart(part.html, markup)
                break
            if isinstance(part, FilePart):
                parts[index] = FilePart(part.attachment, markup)
                break
        else:
            # Buttons with nothing to hang them on: Telegram needs some text under which to show them.
            parts.append(TextPart("\u2060", markup))
    if reply.invoice is not None:
        parts.append(InvoicePart(reply.invoice))
    return parts


Caller = Callable[[int, Callable[[], Awaitable[Message]]], Awaitable[Message]]
"""Runs one send for a chat (the adapter's flood-limited, 429-retrying wrapper)."""


async def send_parts(
    bot: Bot,
    chat_id: int,
    parts: Sequence[Part],
    *,
    call: Caller,
    thread_id: int | None = None,
    reply_to: int | None = None,
) -> list[Message]:
    """Send planned parts to one chat; the first one answers ``reply_to`` when given.

    Errors propagate (the caller decides: a blocked user is a ``DeliveryError``, a group falls back to a link).
    """
    sent: list[Message] = []
    for index, part in enumerate(parts):
        reply_parameters = (
            ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to is not None and index == 0 else None
        )
        sent.append(await call(chat_id, _sender(bot, chat_id, part, thread_id, reply_parameters)))
    return sent


def _sender(
    bot: Bot, chat_id: int, part: Part, thread_id: int | None, reply_parameters: ReplyParameters | None
) -> Callable[[], Awaitable[Message]]:
    if isinstance(part, TextPart):
        return lambda: bot.send_message(
            chat_id,
            part.html,
            parse_mode=ParseMode.HTML,
            reply_markup=part.keyboard,
            message_thread_id=thread_id,
            reply_parameters=reply_parameters,
        )
    if isinstance(part, FilePart):
        # A fresh InputFile per attempt: a retried upload must send the bytes again.
        attachment = part.attachment
        send_file = bot.send_photo if attachment.is_image else bot.send_document
        return lambda: send_file(
            chat_id,
            InputFile(attachment.data, filename=attachment.filename),
            reply_markup=part.keyboard,
            message_thread_id=thread_id,
            reply_parameters=reply_parameters,
        )
    invoice = part.invoice
    if invoice.subscription_period is not None:
        return lambda: _send_subscription_link(bot, chat_id, invoice, thread_id, reply_parameters)
    return lambda: bot.send_invoice(
        chat_id,
        title=_clip(invoice.title, INVOICE_TITLE_LIMIT),
        description=_clip(invoice.description or invoice.title, INVOICE_DESCRIPTION_LIMIT),
        payload=invoice.payload,
        currency=invoice.currency,
        prices=[LabeledPrice(_clip(invoice.title, INVOICE_TITLE_LIMIT), invoice.amount)],
        # Telegram Stars take an empty provider token; digital goods must be sold in Stars.
        provider_token="",
        message_thread_id=thread_id,
        reply_parameters=reply_parameters,
    )


async def _send_subscription_link(
    bot: Bot, chat_id: int, invoice: Invoice, thread_id: int | None, reply_parameters: ReplyParameters | None
) -> Message:
    # Telegram sells Stars subscriptions only through invoice links (createInvoiceLink with subscription_period);
    # sendInvoice has no such parameter. The link goes under a message as a button.
    link = await bot.create_invoice_link(
        title=_clip(invoice.title, INVOICE_TITLE_LIMIT),
        description=_clip(invoice.description or invoice.title, INVOICE_DESCRIPTION_LIMIT),
        payload=invoice.payload,
        currency=invoice.currency,
        prices=[LabeledPrice(_clip(invoice.title, INVOICE_TITLE_LIMIT), invoice.amount)],
        provider_token="",
        subscription_period=invoice.subscription_period,
    )
    days = (invoice.subscription_period or 0) // 86400
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(f"Subscribe: {invoice.amount} ⭐ / {days} days", url=link)]])
    return await bot.send_message(
        chat_id,
        f"Subscribe to {invoice.title}: renews every {days} days until you cancel (/subscriptions).",
        reply_markup=markup,
        message_thread_id=thread_id,
        reply_parameters=reply_parameters,
    )


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
