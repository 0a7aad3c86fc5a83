"""What a command handler answers: platform-neutral replies the adapters render and send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.core.markup import Rich, rich


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a reply: a chart PNG, a member's data export."""

    filename: str
    data: bytes
    mime_type: str = "application/octet-stream"

    @property
    def is_image(self) -> bool:
        """Whether platforms should show it inline as a picture."""
        return self.mime_type.startswith("image/")


ButtonKind = Literal["command", "url", "premium"]


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a reply.

    ``command`` buttons run a command line as the member who presses them (``"/buy py-async"``,
    ``"/forget confirm 8f3a…"``); ``url`` buttons open a link; ``premium`` buttons start a Discord SKU purchase
    (``value`` is the SKU id). An adapter that cannot show a kind raises instead of dropping it. Consecutive buttons
    with the same ``row`` share a line where the platform lays buttons out by hand (Telegram: a 0–10 scale in two
    lines instead of eleven); None keeps one button per line there.
    """

    label: str
    kind: ButtonKind
    value: str
    danger: bool = False
    row: int | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    """A Telegram Stars invoice for a course. ``payload`` is signed (see ``bot.core.payments``).

    ``subscription_period`` (seconds) makes it a subscription: charged again every period until cancelled
    (Telegram sends it as a link, ``createInvoiceLink``, and allows 30 days only).
    """

    course_id: str
    title: str
    description: str
    amount: int
    currency: str
    payload: str
    subscription_period: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer.

    Attributes:
        text: What to say.
        private: Personal data: the adapter must deliver it only to the invoker (Telegram: a DM, and in a group a
            short pointer to the DM; Discord: an ephemeral response).
        attachments: Files (images show inline).
        buttons: Buttons under the message, in order.
        invoice: A payment request to send after the text (Telegram).
        mention_role: A Discord role the message mentions and pings (the help-question pings); every other
            message pings nobody.
    """

    text: Rich
    private: bool = False
    attachments: tuple[Attachment, ...] = ()
    buttons: tuple[Button, ...] = ()
    invoice: Invoice | None = None
    mention_role: int | None = None

    @classmethod
    def say(cls, *lines: str, private: bool = False) -> Reply:
        """A plain-text reply."""
        return cls(rich(*lines), private=private)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message the bot starts (digest, nudge, receipt, owner warning) rather than an answer to a command.

    Attributes:
        platform: ``"telegram"`` or ``"discord"``.
        target: Chat/channel id, or a user id when ``direct`` is true.
        direct: Send privately to the user ``target``.
        reply: What to send.
    """

    platform: str
    target: str
    reply: Reply
    direct: bool = False
