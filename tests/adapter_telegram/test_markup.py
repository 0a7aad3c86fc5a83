"""Telegram HTML: what members see, whatever their display names contain, in chunks Telegram accepts."""

from __future__ import annotations

import html
import re

import pytest

from bot.adapters.telegram.markup import render_telegram_html, split_html, utf16_len
from bot.adapters.telegram.render import MESSAGE_LIMIT, TextPart, plan
from bot.core.markup import bold, code, link, render_plain, rich
from bot.core.replies import Reply

HOSTILE = "<b>Ann</b> & *co* @everyone"


def test_telegram_html_escapes_member_text_and_formats_ours() -> None:
    text = rich([bold("Top"), " ", HOSTILE], [code("/stats"), " ", link("docs", "https://x.dev/?a=1&b=2")])
    assert render_telegram_html(text) == (
        "<b>Top</b> &lt;b&gt;Ann&lt;/b&gt; &amp; *co* @everyone\n"
        '<code>/stats</code> <a href="https://x.dev/?a=1&amp;b=2">docs</a>'
    )


# --- Telegram: chunks measured in UTF-16 and valid HTML each ---

EMOJI_NAME = "🧑‍💻 Zoë 🐍🐍 <dev> & co 🎉"  # astral characters count 2 UTF-16 units each


def _html_is_balanced(chunk: str) -> bool:
    """Every tag closed in order, every ``&`` the start of a whole entity, no ``<`` that is not a tag."""
    stack: list[str] = []
    for match in re.finditer(r"<(/?)([a-z]+)[^<>]*>|&(?:amp|lt|gt|quot);|[<>&]", chunk):
        closing, name = match.group(1), match.group(2)
        if name is None:
            if match.group(0) in "<>&":
                return False  # a stray "<", ">" or a cut entity
            continue
        if closing:
            if not stack or stack.pop() != name:
                return False
        else:
            stack.append(name)
    return not stack


def _text_of(chunks: list[str]) -> str:
    return html.unescape(re.sub(r"<[^<>]*>", "", "".join(chunks)))


def test_telegram_chunks_count_utf16_units_and_split_at_line_ends() -> None:
    lines = [[bold(f"{i}. {EMOJI_NAME}"), f" — {i * 7} messages"] for i in range(400)]
    html_text = render_telegram_html(rich(*lines))
    assert len(html_text) < 4096 * 6 and utf16_len(html_text) > len(html_text)  # emoji really count double
    chunks = split_html(html_text, 4096)
    assert len(chunks) > 1
    for chunk in chunks:
        assert utf16_len(chunk) <= 4096
        assert _html_is_balanced(chunk)
        assert chunk.startswith("<b>") and chunk.endswith("messages")  # whole lines only
    assert "\n".join(chunks) == html_text


def test_a_line_longer_than_the_limit_is_cut_between_characters_with_tags_reopened() -> None:
    line = rich([bold("x&y<" * 1250)])  # 5,000 characters of text in one bold span, entities included
    html_text = render_telegram_html(line)
    chunks = split_html(html_text, 4096)
    assert len(chunks) >= 4
    for chunk in chunks:
        assert utf16_len(chunk) <= 4096
        assert _html_is_balanced(chunk)
        assert chunk.startswith("<b>") and chunk.endswith("</b>")
    assert _text_of(chunks) == "x&y<" * 1250  # no character lost or doubled


def test_an_emoji_is_never_split_and_a_link_is_reopened_whole() -> None:
    line = rich(["🐍" * 3000, link("🎉" * 100 + "&", "https://x.dev/?a=1&b=2")])
    chunks = split_html(render_telegram_html(line), 4096)
    for chunk in chunks:
        assert utf16_len(chunk) <= 4096
        assert _html_is_balanced(chunk)
    assert _text_of(chunks) == "🐍" * 3000 + "🎉" * 100 + "&"


@pytest.mark.parametrize("emoji", ["👩‍💻", "🇩🇪", "👍🏽", "é"], ids=["zwj", "flag", "skin-tone", "accent"])
def test_a_cut_never_separates_the_parts_of_one_emoji_or_letter(emoji: str) -> None:
    text = "x" + emoji * 2000  # no line break: the line must be cut somewhere inside
    chunks = split_html(render_telegram_html(rich([text])), 1000)
    assert len(chunks) > 1
    assert "".join(chunks) == text
    for chunk in chunks[1:]:
        assert chunk.startswith(emoji)
    assert all(c.count('<a href="https://x.dev/?a=1&amp;b=2">') == c.count("</a>") for c in chunks)


def test_a_plan_sends_only_chunks_telegram_accepts() -> None:
    names = rich(*[[bold(EMOJI_NAME * 3), " ", "x" * 5000 if i == 3 else "ok"] for i in range(60)])
    parts = [p for p in plan(Reply(names)) if isinstance(p, TextPart)]
    assert len(parts) > 2
    assert all(utf16_len(p.html) <= MESSAGE_LIMIT and _html_is_balanced(p.html) for p in parts)
    assert _text_of([p.html for p in parts]).replace("\n", "") == render_plain(names).replace("\n", "")
