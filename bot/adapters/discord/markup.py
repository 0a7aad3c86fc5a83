"""Discord's dialect of the neutral markup: message Markdown with member text escaped, and message-sized chunks."""

from __future__ import annotations

import re

from bot.core.markup import Rich

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
