"""A small platform-neutral markup for everything the bot says.

Handlers build :class:`Rich` text from lines of :class:`Span` objects; each adapter renders it in its platform's
dialect (Telegram HTML, Discord Markdown, plain text for the console and logs). Keeping markup structured rather
than as a string means a member's display name can never inject formatting: user text is escaped per platform
at the last moment.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
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


def render_telegram_html(value: Rich) -> str:
    """Telegram ``parse_mode="HTML"``: only ``<b> <i> <code> <a>`` and the three HTML entities are special."""
    out: list[str] = []
    for line in value.lines:
        parts: list[str] = []
        for span in line:
            body = html.escape(span.text, quote=False)
            if span.style == "bold":
                body = f"<b>{body}</b>"
            elif span.style == "italic":
                body = f"<i>{body}</i>"
            elif span.style == "code":
                body = f"<code>{body}</code>"
            if span.url:
                body = f'<a href="{html.escape(span.url, quote=True)}">{body}</a>'
            parts.append(body)
        out.append("".join(parts))
    return "\n".join(out)


_DISCORD_SPECIAL = re.compile(r"([\\*_~`|\[\]])")
# Headings, quotes and lists only start a line; escaping them elsewhere would litter the text with backslashes.
_DISCORD_LINE_START = re.compile(r"^(\s*)([#>-])", re.MULTILINE)


def escape_discord(value: str) -> str:
    """Escape Discord Markdown so user-provided text shows literally (and ``@everyone`` pings nobody)."""
    escaped = _DISCORD_SPECIAL.sub(r"\\\1", value)
    escaped = _DISCORD_LINE_START.sub(r"\1\\\2", escaped)
    return escaped.replace("@", "@\u200b")


def render_discord_markdown(value: Rich) -> str:
    """Discord message Markdown."""
    out: list[str] = []
    for line in value.lines:
        parts: list[str] = []
        for span in line:
            if span.style == "code":
                body = "`" + span.text.replace("`", "ˋ") + "`"
            else:
                body = escape_discord(span.text)
                if span.style == "bold":
                    body = f"**{body}**"
                elif span.style == "italic":
                    body = f"*{body}*"
            if span.url:
                body = f"[{body}](<{span.url}>)"
            parts.append(body)
        out.append("".join(parts))
    return "\n".join(out)


def split_message(rendered: str, limit: int) -> list[str]:
    """Split rendered text into chunks of at most ``limit`` characters, at line breaks where possible.

    Lines are never split inside unless a single line is longer than the limit (then it is cut hard), so
    formatting tags that open and close on one line stay balanced in every chunk.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    current = ""
    for line in rendered.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current)
    return chunks


def utf16_len(value: str) -> int:
    """Length in UTF-16 code units, Telegram's measure of a message (an emoji outside the BMP counts 2)."""
    return len(value.encode("utf-16-le")) // 2


# A tag, an entity, a line break or one character with what joins it (a flag's two letters; an emoji's zero-width
# joiner sequence, skin tone or variation selector; combining accents): the units a message may be cut between.
_JOINED = "\u200d[^\n]|[\u0300-\u036f\u20d0-\u20ff\ufe00-\ufe0f\U0001f3fb-\U0001f3ff]"
_HTML_TOKEN = re.compile(rf"<[^<>]*>|&#?\w+;|[\U0001f1e6-\U0001f1ff]{{2}}|[^\n](?:{_JOINED})*|\n")
_TAG_NAME = re.compile(r"</?\s*([A-Za-z][\w-]*)")


def split_html(rendered: str, limit: int, *, measure: Callable[[str], int] = utf16_len) -> list[str]:
    """Split Telegram HTML into chunks of at most ``limit`` units of ``measure``, each valid HTML on its own.

    Chunks end at a line break where one fits; a line longer than the limit is cut between characters. A cut
    never falls inside a tag or an entity (``&amp;``), and tags open at the cut are closed at the end of the chunk
    and reopened at the start of the next, so formatting carries over.

    Raises:
        ValueError: The limit cannot hold even the tags open at a cut plus one character.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    stack: list[tuple[str, str]] = []  # open tags: (the tag as written, its closing tag)
    current: list[str] = []
    size = 0
    # The last line break in ``current``: its index, and the tags open there.
    last_break: tuple[int, list[tuple[str, str]]] | None = None

    def closers(tags: list[tuple[str, str]]) -> list[str]:
        return [close for _, close in reversed(tags)]

    def emit(body: list[str], tags: list[tuple[str, str]]) -> None:
        chunk = "".join(body + closers(tags))
        if body and "".join(body) != "".join(opening for opening, _ in tags):  # skip chunks of only tags
            chunks.append(chunk)

    def start(tags: list[tuple[str, str]], rest: Sequence[str] = ()) -> tuple[list[str], int]:
        body = [opening for opening, _ in tags] + list(rest)
        return body, sum(measure(t) for t in body)

    for token in _HTML_TOKEN.findall(rendered):
        after = list(stack)
        match = _TAG_NAME.match(token) if token.startswith("<") else None
        if match:
            name = match.group(1).lower()
            if token.startswith("</"):
                for index in range(len(after) - 1, -1, -1):
                    if after[index][1] == f"</{name}>":
                        del after[index]
                        break
            elif not token.endswith("/>"):
                after.append((token, f"</{name}>"))
        cost = measure(token)
        while size + cost + sum(measure(c) for c in closers(after)) > limit:
            if last_break is not None:
                index, tags = last_break
                emit(current[:index], tags)
                current, size = start(tags, current[index + 1 :])
                last_break = None
                continue
            fresh, fresh_size = start(stack)
            if current == fresh:
                raise ValueError(f"limit {limit} is too small for the open tags and one character")
            emit(current, stack)
            current, size = fresh, fresh_size
        if token == "\n":
            last_break = (len(current), list(stack))
        current.append(token)
        size += cost
        stack = after
    emit(current, stack)
    return chunks or [""]
