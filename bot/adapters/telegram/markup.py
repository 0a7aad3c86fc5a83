"""Telegram's dialect of the neutral markup: HTML for ``parse_mode="HTML"``, and splitting it into messages.

Telegram measures a message in UTF-16 code units (4,096 at most) and rejects HTML with a tag or an entity cut in
half, so :func:`split_html` cuts only between whole tokens and re-opens the tags that were open at the cut.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from bot.core.markup import Rich


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
