"""Platform adapters: the only code that imports ``discord`` or ``telegram``."""

from __future__ import annotations

from bot.core.ports import Adapter, AdapterDeps


def build_adapters(deps: AdapterDeps) -> list[Adapter]:
    """Build the adapters the configuration enables, Telegram first.

    The platform libraries are imported only when their adapter is enabled, so a Telegram-only install never
    loads discord.py (and the other way round).
    """
    adapters: list[Adapter] = []
    if deps.settings.telegram.enabled:
        from bot.adapters.telegram.adapter import TelegramAdapter

        adapters.append(TelegramAdapter(deps))
    if deps.settings.discord.enabled:
        from bot.adapters.discord.adapter import DiscordAdapter

        adapters.append(DiscordAdapter(deps))
    return adapters
