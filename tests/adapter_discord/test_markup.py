"""Discord Markdown: what members see, whatever their display names contain."""

from __future__ import annotations

import pytest

from bot.adapters.discord.markup import escape_discord, render_discord_markdown, split_message
from bot.core.markup import bold, rich

HOSTILE = "<b>Ann</b> & *co* @everyone"


def test_discord_markdown_escapes_formatting_and_mass_mentions() -> None:
    rendered = render_discord_markdown(rich([bold("Top"), " ", HOSTILE]))
    assert rendered == "**Top** <b>Ann</b> & \\*co\\* @\u200beveryone"
    assert escape_discord("# not a heading\n- not a list") == "\\# not a heading\n\\- not a list"
    assert escape_discord("2024-W10 (04 Mar)") == "2024-W10 (04 Mar)"  # nothing to escape mid-line


@pytest.mark.parametrize("limit", [10, 25, 4096])
def test_split_keeps_every_character_and_respects_the_limit(limit: int) -> None:
    text = "\n".join(f"line {i} " + "x" * (i % 17) for i in range(200))
    chunks = split_message(text, limit)
    assert all(len(c) <= limit for c in chunks)
    assert "\n".join(chunks).replace("\n", "") == text.replace("\n", "")


def test_split_breaks_at_line_ends_when_it_can() -> None:
    assert split_message("aaaa\nbbbb\ncccc", 9) == ["aaaa\nbbbb", "cccc"]
    assert split_message("", 5) == [""]
