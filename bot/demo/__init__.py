"""``cohortbot demo``: a simulated community played through the real bot, with no token and no config.

``community`` is the model (deterministic, no I/O), ``adapter`` connects it to the bot as the simulated platform,
``runner`` plays the months and writes the report, digests and nudges it produced.
"""

from bot.demo.runner import (
    DATABASE_NAME,
    DEFAULT_OUT,
    MARKER_NAME,
    START,
    DemoError,
    DemoResult,
    demo_settings,
    run_demo,
)

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_OUT",
    "MARKER_NAME",
    "START",
    "DemoError",
    "DemoResult",
    "demo_settings",
    "run_demo",
]
