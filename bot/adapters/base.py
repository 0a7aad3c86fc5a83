"""The contract every platform adapter fills in."""

from __future__ import annotations

from typing import Protocol


class Adapter(Protocol):
    """A platform connection: translates payloads into events and sends replies.

    ``bot/app.py`` constructs adapters with what they need (settings, the event writer, the core) and calls
    ``start``/``stop`` on the shared event loop; an adapter never runs its own loop or blocks in ``start``.
    """

    name: str

    async def start(self) -> None:
        """Connect and begin delivering events. Returns once connected."""
        ...

    async def stop(self) -> None:
        """Stop receiving, finish in-flight work, and disconnect."""
        ...
