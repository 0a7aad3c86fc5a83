"""Sale alerts: one line per sale, renewal, refund, cancellation or failed access grant, for the owners only.

``[sales] alert_chat`` (a Telegram chat) and ``[sales] alert_channel`` (a Discord channel) receive them, whichever
platform the money moved on: the line goes out through :meth:`~bot.core.ports.Adapter.send` of the adapter the
target is on. They are never sent to a member: the targets are the configured owners' places only. An alert is a
notice, not a record (the ledger is the record): one that cannot be delivered is logged and dropped, and never
holds up the sale it reports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from analytics.formatting import fmt_money
from bot.core.replies import OutgoingMessage, Reply

if TYPE_CHECKING:
    from bot.config import SalesSettings
    from bot.core.ports import Adapter
    from storage.events import MemberRef

log = logging.getLogger(__name__)

AlertKind = Literal["sale", "renewal", "refund", "cancellation", "resumed", "ending", "access failed", "access ended"]

_ICONS: dict[str, str] = {
    "sale": "💰",
    "renewal": "🔁",
    "refund": "↩️",
    "cancellation": "🛑",
    "resumed": "▶️",
    "ending": "⏳",
    "access failed": "⚠️",
    "access ended": "⌛",
}


@dataclass(frozen=True, slots=True)
class SaleAlert:
    """One thing that happened to money or access, as the owners read it.

    Attributes:
        kind: What happened.
        platform: Where (``"telegram"``, ``"discord"``).
        member: Who.
        course: The course title (or id when it is no longer configured).
        amount: The amount in minor units (whole Stars for XTR), when money moved.
        currency: Its currency.
        note: A few more words (why access failed, until when a subscription runs).
    """

    kind: AlertKind
    platform: str
    member: MemberRef
    course: str
    amount: int | None = None
    currency: str | None = None
    note: str = ""

    def line(self) -> str:
        """The alert as one line: what, course, amount, member, platform."""
        who = f"{self.platform} user {self.member.user_id}"
        if self.member.username:
            who = f"@{self.member.username} ({who})"
        elif self.member.display_name:
            who = f"{self.member.display_name} ({who})"
        parts = [f"{_ICONS[self.kind]} {self.kind.capitalize()}: {self.course}"]
        if self.amount is not None and self.currency:
            major = Decimal(self.amount) if self.currency == "XTR" else Decimal(self.amount) / 100
            parts.append(fmt_money(major, self.currency))
        parts.append(who)
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


class SaleAlerts:
    """Posts :class:`SaleAlert` lines to the configured owners' chat and channel (the dispatcher holds one)."""

    def __init__(self, settings: SalesSettings) -> None:
        """Create the sink; nothing is sent until adapters are attached.

        Args:
            settings: ``[sales]`` (``alert_chat``, ``alert_channel``).
        """
        self._targets: list[tuple[str, str]] = []
        if settings.alert_chat is not None:
            self._targets.append(("telegram", str(settings.alert_chat)))
        if settings.alert_channel is not None:
            self._targets.append(("discord", str(settings.alert_channel)))
        self._adapters: dict[str, Adapter] = {}
        self.sent: int = 0

    def attach(self, *adapters: Adapter) -> None:
        """Send through these adapters (``bot/app.py`` attaches every built adapter)."""
        for adapter in adapters:
            self._adapters[adapter.name] = adapter

    @property
    def enabled(self) -> bool:
        """Whether any alert target is configured."""
        return bool(self._targets)

    async def post(self, alert: SaleAlert) -> None:
        """Send one alert to every configured target whose platform is connected. Never raises."""
        for platform, target in self._targets:
            adapter = self._adapters.get(platform)
            if adapter is None:
                log.warning("sale alert for %s %s dropped: %s is not connected", platform, target, platform)
                continue
            try:
                await adapter.send(OutgoingMessage(platform, target, Reply.say(alert.line())))
            except Exception as exc:  # an alert never holds up the sale it reports
                log.warning("sale alert to %s %s failed: %s", platform, target, exc)
            else:
                self.sent += 1
