"""The neutral markup in plain text (console, CLI, logs); each platform's dialect is tested beside its adapter."""

from __future__ import annotations

from bot.core.markup import link, render_plain, rich


def test_plain_text_shows_link_targets() -> None:
    assert render_plain(rich(["see ", link("docs", "https://x.dev")], "", "end")) == "see docs (https://x.dev)\n\nend"
