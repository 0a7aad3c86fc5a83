"""``cohortbot console``: the bot in a terminal, as any member, with no chat platform.

``session`` opens the database and runs the app with the console as its only adapter; ``adapter`` turns typed
lines into events and commands and prints the answers; ``shop`` is the simulated checkout (``/buy`` then ``:pay``).
"""

from bot.console.session import ConsoleError, console_settings, run_console

__all__ = ["ConsoleError", "console_settings", "run_console"]
