"""What every web handler may use, stored once on the aiohttp application under :data:`CONTEXT`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import Engine

from bot.clock import Clock
from bot.config import Settings

if TYPE_CHECKING:
    from storage.writer import EventWriter


@dataclass(frozen=True)
class WebContext:
    """The parts the web side reads.

    Attributes:
        settings: Parsed configuration (``[web]``, ``[dashboard]``, the community's time zone).
        engine: The database.
        clock: Time source (tests inject a fake one).
        community_id: The registered community the pages show.
        signing_secret: ``COHORTBOT_SECRET``: signs login links; None refuses every login.
        writer: The running writer inside ``cohortbot run`` (live updates, queue depth); None when standalone.
    """

    settings: Settings
    engine: Engine
    clock: Clock
    community_id: int
    signing_secret: str | None
    writer: EventWriter | None = None


CONTEXT: web.AppKey[WebContext] = web.AppKey("cohortbot_context", WebContext)
