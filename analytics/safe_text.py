"""Untrusted text (names from chat platforms and imports) made safe to print on a terminal.

A display name can hold terminal escapes (``ESC[31m``, ``ESC]0;...BEL`` rewrites the window title), bidirectional
overrides that reverse what follows (U+202E), and other control characters. Every output a person reads — the CLI,
the console, chat replies — shows such characters as "?".
"""

from __future__ import annotations

import unicodedata

# Line structure our own output needs: a line break, a tab, and the carriage return a progress bar redraws with.
_LAYOUT = frozenset("\n\r\t")


def _clean(value: str, keep: frozenset[str]) -> str:
    out = []
    for ch in value:
        if ch in keep:
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if ch.isspace():
            out.append(" ")
        elif (category[0] == "C" and ch != "\u200d") or category in ("Zl", "Zp"):
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def clean_name(name: str) -> str:
    """A name safe to print: control, format and private-use characters become "?", whitespace a space.

    Keeps the zero-width joiner so emoji sequences survive. A name never breaks a line, so it cannot forge one.

    Args:
        name: A display name from a chat platform (untrusted).

    Returns:
        The cleaned name.
    """
    return _clean(name, frozenset())


def clean_text(text: str) -> str:
    """Whole output made safe for a terminal: like :func:`clean_name`, but line breaks, tabs and carriage returns stay.

    The CLI passes everything it writes through this, so a name that reaches output by any path is defused.
    """
    return _clean(text, _LAYOUT)
