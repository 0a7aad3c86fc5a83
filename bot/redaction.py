"""Keep tokens out of logs, and out of everything else the process prints.

Libraries log request URLs (httpx logs ``POST https://api.telegram.org/bot<token>/getUpdates`` at INFO), and
exceptions can carry headers or a proxy's error page that echoes the request path. A filter on every handler
replaces the configured secrets, and anything shaped like a bot token, before a record is written; hooks do the
same for what Python prints itself (uncaught exceptions in the main thread and in other threads, exceptions it
can only ignore, warnings), and the CLI writes its own output through :class:`RedactingStream`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, TextIO

from analytics.safe_text import clean_text

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


LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers.

    Keys: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, and ``exception`` (the traceback text) when
    the record carries one. Line breaks inside a message or traceback are escaped by JSON, so a record never
    spans two lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (already redacted by :class:`RedactingFilter`)."""
        # Control characters are replaced before encoding: JSON would only escape them, and whatever shows the
        # decoded message (a log viewer, ``jq -r``) would then let a member's name drive the terminal.
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": clean_text(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = clean_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = clean_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", secrets: Iterable[str] = (), log_format: LogFormat = "text") -> None:
    """Log to stderr with secrets redacted from every record, ours and the libraries'.

    Log lines quote names from the platforms, so control characters are shown as "?" too (see
    :func:`analytics.safe_text.clean_text`).

    Args:
        level: The root level (``DEBUG`` also shows the chatter of httpx and Alembic).
        secrets: Values replaced by ``[redacted]`` wherever they appear.
        log_format: ``text`` (default): one readable line per record; ``json``: one JSON object per line.
    """
    handler = logging.StreamHandler(RedactingStream(sys.stderr, secrets, clean=True))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every Bot API request at INFO, i.e. a line per long poll, and Alembic a line per plugin and
    # migration context whenever start-up checks the schema revision: noise for an operator; DEBUG keeps them.
    quiet = logging.DEBUG if logging.getLevelName(level) == logging.DEBUG else logging.WARNING
    for name in ("httpx", "httpcore", "alembic"):
        logging.getLogger(name).setLevel(quiet)


class RedactingStream:
    """A text stream wrapper that redacts what is written (the CLI's stdout and stderr).

    Config errors echo values from the file, and a token pasted into the wrong key must not reach the terminal.
    With ``clean=True`` it also shows control characters (terminal escapes, bidirectional overrides) as "?",
    keeping line breaks, tabs and carriage returns: whatever path a member's name takes to the CLI's output, it
    cannot drive the terminal.
    """

    def __init__(self, stream: TextIO, secrets: Iterable[str] = (), *, clean: bool = False) -> None:
        """Wrap ``stream``."""
        self._stream = stream
        self._secrets = tuple(s for s in secrets if s)
        self._clean = clean

    def write(self, text: str) -> int:
        """Write ``text`` with secrets replaced (and control characters, with ``clean``)."""
        text = redact(text, self._secrets)
        return self._stream.write(clean_text(text) if self._clean else text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self._stream.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal (progress bars ask)."""
        return self._stream.isatty()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def install_process_hooks(secrets: Iterable[str] = ()) -> None:
    """Redact secrets from what Python itself prints to stderr, for the rest of the process.

    Covers uncaught exceptions (``sys.excepthook``), uncaught exceptions in threads (``threading.excepthook``),
    exceptions Python can only ignore, e.g. in a finalizer (``sys.unraisablehook``), and warnings. Exceptions
    inside asyncio tasks are logged by asyncio through ``logging``, which :func:`configure_logging` covers.
    A 403 page from a proxy that echoes ``/bot<token>/getUpdates`` becomes an exception message; without these
    hooks its traceback would print the token.
    """
    values = tuple(s for s in secrets if s)

    def write(text: str) -> None:
        stream = sys.stderr
        if stream is None:  # pythonw, or stderr closed: nowhere to print
            return
        stream.write(clean_text(redact(text, values)))
        stream.flush()

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        write("".join(traceback.format_exception(kind, exc, tb)))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else threading.get_ident()
        formatted = traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        write(f"Exception in thread {name}:\n" + "".join(formatted))

    def unraisablehook(args: sys.UnraisableHookArgs) -> None:
        where = f"{args.err_msg or 'Exception ignored in'}: {args.object!r}\n"
        write(where + "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        if file is None:
            write(text)
        else:
            file.write(redact(text, values))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    sys.unraisablehook = unraisablehook
    warnings.showwarning = showwarning
