"""Keep tokens out of logs.

Libraries log request URLs (httpx logs ``POST https://api.telegram.org/bot<token>/getUpdates`` at INFO), and
exceptions can carry headers. A filter on every handler replaces the configured secrets, and anything shaped
like a bot token, before a record is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TextIO

# Telegram bot tokens: "<bot id>:<35 url-safe characters>"; Discord bot tokens: three dot-separated base64 parts.
_TOKEN_PATTERNS = (
    # No \b before the digits: in Bot API URLs the token follows "bot" directly (".../bot123:AAH.../getMe").
    re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),
)
REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secrets and token-shaped strings in ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from the fully formatted message (arguments included)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Create the filter for these secret values (empty values are ignored)."""
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Log to stderr with secrets redacted from every record, ours and the libraries'."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every Bot API request at INFO, i.e. a line per long poll; keep that for DEBUG only.
    quiet = logging.DEBUG if logging.getLevelName(level) == logging.DEBUG else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)


class RedactingStream:
    """A text stream wrapper that redacts what is written (the CLI's stdout and stderr).

    Config errors echo values from the file, and a token pasted into the wrong key must not reach the terminal.
    """

    def __init__(self, stream: TextIO, secrets: Iterable[str] = ()) -> None:
        """Wrap ``stream``."""
        self._stream = stream
        self._secrets = tuple(s for s in secrets if s)

    def write(self, text: str) -> int:
        """Write ``text`` with secrets replaced."""
        return self._stream.write(redact(text, self._secrets))

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self._stream.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal (progress bars ask)."""
        return self._stream.isatty()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)
