"""How configuration problems are reported.

The error, and values quoted back shortened and with secrets masked (error output ends up in logs and bug reports).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Final

# Values quoted back in error messages are shortened so one bad key cannot flood the terminal.
_MAX_SHOWN_CHARS: Final = 60


_MAX_SHOWN_LIST_CHARS: Final = 80


# Shapes of real tokens and URL passwords. Anything matching is masked before a value is echoed in an error
# or a repr, because error output ends up in logs and bug reports.
_TELEGRAM_TOKEN_RE: Final = re.compile(r"[0-9]{5,}:[A-Za-z0-9_-]{30,}")


_DISCORD_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{20,}")


_URL_PASSWORD_RE: Final = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")


class ConfigError(Exception):
    """The configuration is invalid or could not be read.

    Attributes:
        errors: Every problem found, one self-contained message each (key path, expected, got).
        source: The file (or other source label) the configuration came from, if known.
    """

    errors: tuple[str, ...]
    source: str | None

    def __init__(self, errors: str | Iterable[str], *, source: str | None = None) -> None:
        """Create the error.

        Args:
            errors: One message or an iterable of messages.
            source: Where the configuration came from, e.g. the file path.
        """
        self.errors = (errors,) if isinstance(errors, str) else tuple(errors)
        self.source = source
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


class _Invalid(Exception):
    """Raised by a value checker; the table reader turns it into a full "expected ..., got ..." message."""

    def __init__(self, expected: str, hint: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def _redact(text: str) -> str:
    text = _TELEGRAM_TOKEN_RE.sub(lambda m: m[0].split(":", 1)[0] + ":***", text)
    text = _DISCORD_TOKEN_RE.sub("***", text)
    return _URL_PASSWORD_RE.sub(r"\1***@", text)


def _mask(secret: str | None) -> str:
    return "None" if secret is None else "'***'"


def _show(value: object) -> str:
    """Render a value the way it would be written in TOML, shortened and with secrets masked."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = _redact(value)
        if len(text) > _MAX_SHOWN_CHARS:
            text = text[: _MAX_SHOWN_CHARS - 3] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        kind = "date-time" if isinstance(value, dt.datetime) else type(value).__name__
        # Unquoted 09:00:00 is a TOML time, not the string the option wants; saying so explains the error.
        return f"{value.isoformat()} (a TOML {kind} value, not a quoted string)"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
        return text if len(text) <= _MAX_SHOWN_LIST_CHARS else text[: _MAX_SHOWN_LIST_CHARS - 4] + "...]"
    return repr(value)
