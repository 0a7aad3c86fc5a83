"""A small platform-neutral markup for everything the bot says.

Handlers build :class:`Rich` text from lines of :class:`Span` objects; each adapter renders it in its platform's
dialect (``bot/adapters/telegram/markup.py``: Telegram HTML; ``bot/adapters/discord/markup.py``: Discord Markdown);
the plain-text renderer for the console, the CLI and logs lives here. Keeping markup structured rather than as a
string means a member's display name can never inject formatting: user text is escaped per platform at the last
moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Style = Literal["plain", "bold", "italic", "code"]


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text in one style, optionally a link."""

    text: str
    style: Style = "plain"
    url: str | None = None


Line = tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Rich:
    """Formatted text: lines of spans. An empty line is a paragraph break."""

    lines: tuple[Line, ...] = ()

    def __add__(self, other: Rich) -> Rich:
        return Rich(self.lines + other.lines)

    def plain(self) -> str:
        """The text without formatting (console, logs, tests)."""
        return render_plain(self)


def text(value: str) -> Span:
    """Plain text."""
    return Span(value)


def bold(value: str) -> Span:
    """Bold text."""
    return Span(value, "bold")


def italic(value: str) -> Span:
    """Italic text."""
    return Span(value, "italic")


def code(value: str) -> Span:
    """Monospaced text (commands, ids)."""
    return Span(value, "code")


def link(label: str, url: str) -> Span:
    """A hyperlink."""
    return Span(label, url=url)


def rich(*lines: Sequence[Span | str] | str) -> Rich:
    """Build rich text; a ``str`` line or item is plain text.

    Example:
        ``rich([bold("Your week"), " in PyCraft"], "", "12 messages")``
    """
    built: list[Line] = []
    for line in lines:
        if isinstance(line, str):
            built.append((Span(line),) if line else ())
        else:
            built.append(tuple(Span(item) if isinstance(item, str) else item for item in line))
    return Rich(tuple(built))


def join(parts: Iterable[Rich], *, blank_line: bool = True) -> Rich:
    """Concatenate blocks, separated by an empty line unless told otherwise."""
    lines: list[Line] = []
    for part in parts:
        if lines and blank_line:
            lines.append(())
        lines.extend(part.lines)
    return Rich(tuple(lines))


def render_plain(value: Rich) -> str:
    """Plain text; links shown as ``label (url)``."""
    return "\n".join("".join(_plain_span(s) for s in line) for line in value.lines)


def _plain_span(span: Span) -> str:
    if span.url and span.url != span.text:
        return f"{span.text} ({span.url})"
    return span.text
