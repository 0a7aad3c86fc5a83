"""A one-line progress bar for imports, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from analytics.formatting import plural


class Progress:
    """Redraws ``[#####.....] 12/1419 files, 1,234 messages`` in place (carriage return), at most every ``interval`` s.

    When the stream is not a terminal (a log file, CI, a pipe) it draws nothing, so captured output holds only
    the summary line. Throttling keeps a fast import from spending its time on terminal writes.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        interval: float = 0.1,
        width: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a progress bar.

        Args:
            stream: Where to draw; stderr by default.
            enabled: Draw or not; by default only when ``stream`` is a terminal.
            interval: Minimum seconds between redraws (the last state is always drawn by ``finish``).
            width: Characters in the bar itself.
            clock: Monotonic time source (tests pass a fake).
        """
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.width = width
        self._clock = clock
        self._total = 0
        self._files = 0
        self._messages = 0
        self._last_draw: float | None = None
        self._drawn = 0

    def start(self, total_files: int) -> None:
        """Begin a run over ``total_files`` files and draw the empty bar."""
        self._total = total_files
        self._files = self._messages = 0
        self._draw()

    def update(self, files: int, messages: int) -> None:
        """Record progress so far (absolute counts) and redraw if the last redraw is old enough."""
        self._files = files
        self._messages = messages
        now = self._clock()
        if self._last_draw is None or now - self._last_draw >= self.interval:
            self._draw(now)

    def finish(self) -> None:
        """Draw the final state and end the line, so the summary starts on a line of its own."""
        if not self.enabled or self._last_draw is None:
            return
        self._draw()
        self.stream.write("\n")
        self.stream.flush()
        self._last_draw = None
        self._drawn = 0

    def render(self) -> str:
        """The bar's text for the current state (without the leading carriage return)."""
        done = self.width * self._files // self._total if self._total else self.width
        bar = "#" * done + "." * (self.width - done)
        return f"[{bar}] {self._files:,}/{plural(self._total, 'file')}, {plural(self._messages, 'message')}"

    def _draw(self, now: float | None = None) -> None:
        if not self.enabled:
            return
        text = self.render()
        # Pad over the previous, possibly longer, line instead of relying on ANSI erase codes.
        self.stream.write("\r" + text.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(text)
        self._last_draw = self._clock() if now is None else now
