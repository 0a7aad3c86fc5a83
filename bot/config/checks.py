"""Value checks for the config's options.

Each takes a raw TOML value and returns the typed setting, or raises ``_Invalid`` saying what was expected (the
table reader turns that into the full message).
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
import string
import urllib.parse
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Final, Literal, TypeGuard

from bot.config.errors import _TELEGRAM_TOKEN_RE, _Invalid
from bot.config.settings import (
    BILLING_PERIOD_DAYS,
    DEFAULT_WEBHOOK_SECRET_ENV,
    NUDGE_PLACEHOLDERS,
    NUDGES_OFF_COMMAND,
    TELEGRAM_TOKEN_ENV,
    WEEKDAYS,
    Billing,
    QuietHours,
    TelegramMode,
    Weekday,
)

_TELEGRAM_MODES: Final[tuple[TelegramMode, ...]] = ("polling", "webhook")


_BILLINGS: Final[tuple[Billing, ...]] = ("once", "monthly")


# Course ids end up in Telegram deep links and callback data, which are limited to 64 bytes including
# the bot's own prefixes; 32 characters leaves comfortable room.
_MAX_COURSE_ID_LENGTH: Final = 32
# The most Telegram Stars one invoice may ask for: Telegram refuses Stars payments above 10,000 (its per-payment
# ceiling; python-telegram-bot 22.x has no constant for sendInvoice amounts, its nearest ones,
# telegram.constants.InvoiceLimit.MAX_STAR_COUNT for paid media and BusinessLimit.MAX_STAR_COUNT = 10000 for Star
# transfers, are documented in telegram/constants.py). A number here because config must not import telegram.
MAX_STARS_PER_INVOICE: Final = 10_000


# Platform ids (Telegram user and chat ids, Discord snowflakes) are stored as signed 64-bit BIGINTs; Bot API
# chat ids fit in 52 bits and Discord snowflakes stay below 2**63 for centuries, so anything bigger is a typo.
INT64_MIN: Final = -(2**63)


INT64_MAX: Final = 2**63 - 1


# Telegram's setWebhook only accepts these ports.
_TELEGRAM_WEBHOOK_PORTS: Final = frozenset({443, 80, 88, 8443})


_CLOCK_RE: Final = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


_QUIET_HOURS_RE: Final = re.compile(r"\s*([0-9]{1,2}:[0-9]{2})\s*-\s*([0-9]{1,2}:[0-9]{2})\s*")


_LISTEN_RE: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_SLUG_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")


_NUMERIC_TEXT_RE: Final = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]+)?\s*")


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int in Python; TOML `true` must never pass as the number 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _unquote_hint(value: object) -> str | None:
    if isinstance(value, str) and _NUMERIC_TEXT_RE.fullmatch(value):
        return "write the number without quotes"
    return None


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    hint = "write it without quotes" if value in ("true", "false") else None
    raise _Invalid("true or false", hint)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid("a string")


def _non_empty_text(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise _Invalid("a non-empty string")


def _positive_int(value: object) -> int:
    if _is_int(value) and value > 0:
        return value
    raise _Invalid("a positive integer", _unquote_hint(value))


def _non_negative_int(value: object) -> int:
    if _is_int(value) and value >= 0:
        return value
    raise _Invalid("a non-negative integer", _unquote_hint(value))


def _busy_timeout(value: object) -> float:
    if _is_number(value) and 0 < value <= 3600:
        return float(value)
    raise _Invalid("a number of seconds above 0 and at most 3600", _unquote_hint(value))


def _stars_price(value: object) -> int:
    if _is_int(value) and 1 <= value <= MAX_STARS_PER_INVOICE:
        return value
    raise _Invalid(
        f"a whole number of Telegram Stars from 1 to {MAX_STARS_PER_INVOICE:,} (Telegram's most per invoice)",
        _unquote_hint(value),
    )


def _billing(value: object) -> Billing:
    for billing in _BILLINGS:
        if billing == value:
            return billing
    raise _Invalid('"once" or "monthly"')


def _reminder_days(value: object) -> int:
    # A reminder later than the period itself would go out on the day of the purchase.
    if _is_int(value) and 0 <= value < BILLING_PERIOD_DAYS:
        return value
    raise _Invalid(f"a whole number of days from 0 (no reminders) to {BILLING_PERIOD_DAYS - 1}", _unquote_hint(value))


def _holdout_share(value: object) -> float:
    if _is_number(value) and 0 <= value <= 0.9:
        return float(value)
    raise _Invalid("a number from 0 to 0.9", _unquote_hint(value))


def _price(value: object) -> Decimal:
    if _is_number(value) and value > 0:
        # Via str() so 49.9 becomes Decimal("49.9"), not the float's binary approximation.
        return Decimal(str(value))
    raise _Invalid("a positive number", _unquote_hint(value))


def _fits_64_bits(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def _id_list(expected: str, accept: Callable[[int], bool]) -> Callable[[object], tuple[int, ...]]:
    def check(value: object) -> tuple[int, ...]:
        if isinstance(value, list | tuple) and all(_is_int(item) and accept(item) for item in value):
            if all(_fits_64_bits(item) for item in value):
                return tuple(value)
            bounds = f"{INT64_MIN} to {INT64_MAX}" if accept(-1) else f"at most {INT64_MAX}"
            raise _Invalid(f"{expected}, each fitting in 64 bits ({bounds})")
        quoted = isinstance(value, list | tuple) and any(_unquote_hint(item) for item in value)
        raise _Invalid(expected, "write IDs as numbers without quotes" if quoted else None)

    return check


_HELP_TOPIC_RE = re.compile(r"-?[0-9]+#[0-9]+")


def _help_channel_ids(value: object) -> tuple[str, ...]:
    # Kept as the platform ids storage uses, so that "<chat>#<topic>" and plain ids compare alike.
    expected = (
        'a list of channel IDs: numbers (a Discord channel or forum, a Telegram chat) or "<chat_id>#<topic_id>" '
        "strings (a Telegram forum topic)"
    )
    if not isinstance(value, list | tuple):
        raise _Invalid(expected)
    found: list[str] = []
    for item in value:
        if _is_int(item) and item != 0 and _fits_64_bits(item):
            found.append(str(item))
        elif isinstance(item, str) and _HELP_TOPIC_RE.fullmatch(item.strip()):
            chat, topic = item.strip().split("#")
            if int(chat) == 0 or int(topic) == 0 or not _fits_64_bits(int(chat)):
                raise _Invalid(expected)
            found.append(f"{int(chat)}#{int(topic)}")
        else:
            hint = (
                "write plain IDs as numbers without quotes"
                if isinstance(item, str) and item.strip().lstrip("-").isdigit()
                else None
            )
            raise _Invalid(expected, hint)
    return tuple(found)


_telegram_chat_ids = _id_list("a list of Telegram chat IDs (non-zero integers)", lambda n: n != 0)


_telegram_user_ids = _id_list("a list of Telegram user IDs (positive integers)", lambda n: n > 0)


_discord_ids = _id_list("a list of Discord IDs (positive integers)", lambda n: n > 0)


_shard_ids = _id_list("a list of shard numbers (0 and up, each below shard_count)", lambda n: n >= 0)


def _telegram_chat_id(value: object) -> int:
    if _is_int(value) and value != 0:
        if _fits_64_bits(value):
            return value
        raise _Invalid(f"a Telegram chat ID fitting in 64 bits ({INT64_MIN} to {INT64_MAX})")
    raise _Invalid("a Telegram chat ID (a non-zero integer)", _unquote_hint(value))


def _discord_id(value: object) -> int:
    if _is_int(value) and value > 0:
        if _fits_64_bits(value):
            return value
        raise _Invalid(f"a Discord ID fitting in 64 bits (1 to {INT64_MAX})")
    raise _Invalid("a Discord ID (a positive integer)", _unquote_hint(value))


def _shards(value: object) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if _is_int(value) and value > 0:
        return value
    raise _Invalid('"auto" or a positive integer', _unquote_hint(value))


def _weekday(value: object) -> Weekday:
    if isinstance(value, str):
        # Case-insensitive: "Monday" is an obvious way to write it and there is no ambiguity.
        for day in WEEKDAYS:
            if day == value.strip().lower():
                return day
    raise _Invalid('a day of the week, "monday" to "sunday"')


def _telegram_mode(value: object) -> TelegramMode:
    for mode in _TELEGRAM_MODES:
        if mode == value:
            return mode
    raise _Invalid('"polling" or "webhook"')


def _parse_clock(text: str) -> dt.time | None:
    match = _CLOCK_RE.fullmatch(text.strip())
    return dt.time(int(match[1]), int(match[2])) if match else None


def _clock_time(value: object) -> dt.time:
    if isinstance(value, str) and (parsed := _parse_clock(value)) is not None:
        return parsed
    raise _Invalid('a 24-hour time "HH:MM" such as "09:00"')


def _quiet_hours(value: object) -> QuietHours:
    if isinstance(value, str) and (match := _QUIET_HOURS_RE.fullmatch(value)):
        start, end = _parse_clock(match[1]), _parse_clock(match[2])
        if start is not None and end is not None:
            return QuietHours(start, end)
    raise _Invalid('a time range "HH:MM-HH:MM" such as "22:00-08:00"')


def _timezone(value: object) -> str:
    expected = 'an IANA time zone name such as "Europe/Berlin"'
    if not isinstance(value, str):
        raise _Invalid(expected)
    # "localtime" and "Factory" load from the system database but are not real zones: "localtime" would
    # silently follow whatever server the bot is moved to.
    if value not in ("localtime", "Factory"):
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
        else:
            return value
    # Only on failure: listing all zones scans the time zone database, which is slow-ish.
    available = sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})
    by_lower = {name.lower(): name for name in available}
    close = [by_lower[value.lower()]] if value.lower() in by_lower else difflib.get_close_matches(value, available, n=1)
    raise _Invalid(expected, f'did you mean "{close[0]}"?' if close else None)


def _url_parts(value: object, schemes: tuple[str, ...]) -> urllib.parse.SplitResult | None:
    if not isinstance(value, str) or any(char.isspace() for char in value):
        return None
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return None
    return parts if parts.scheme in schemes and parts.hostname else None


def _stripe_price_id(value: object) -> str:
    if isinstance(value, str) and re.fullmatch(r"price_[A-Za-z0-9]+", value):
        return value
    hint = (
        "copy the Price id, not the Product id (prod_...)"
        if isinstance(value, str) and value.startswith("prod_")
        else None
    )
    raise _Invalid('a Stripe Price id like "price_1PqR..."', hint)


def _http_url(value: object) -> str:
    if _url_parts(value, ("http", "https")) is not None:
        assert isinstance(value, str)
        return value
    raise _Invalid("an http:// or https:// URL")


def _public_url(value: object) -> str:
    # Empty means "http://host:port"; a query or fragment would break the "/login?t=..." links built on it.
    if value == "":
        return ""
    parts = _url_parts(value, ("http", "https"))
    if parts is None or parts.query or parts.fragment:
        raise _Invalid('an http:// or https:// URL without a query, e.g. "https://stats.example.org", or ""')
    assert isinstance(value, str)
    return value.rstrip("/")


def _port(value: object) -> int:
    if _is_int(value) and 0 < value <= 65535:
        return value
    raise _Invalid("a port number from 1 to 65535", _unquote_hint(value))


def _host(value: object) -> str:
    if isinstance(value, str) and value and not any(char.isspace() or char in "/?#@" for char in value):
        host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        # One colon means "host:port" was written here; IPv6 addresses have at least two.
        if host and host.count(":") != 1:
            return host
    raise _Invalid('a host name or IP address without a port, e.g. "127.0.0.1"')


def _websocket_url(value: object) -> str:
    if _url_parts(value, ("ws", "wss")) is not None:
        assert isinstance(value, str)
        return value
    raise _Invalid("a wss:// or ws:// URL")


def _telegram_api_base_url(value: object) -> str:
    if isinstance(value, str) and _TELEGRAM_TOKEN_RE.search(value):
        # The token is a secret and is appended by the bot; _show() masks it in this message.
        raise _Invalid(f"an http(s) URL without the bot token (the bot appends {TELEGRAM_TOKEN_ENV} itself)")
    return _http_url(value)


def _webhook_url(value: object) -> str:
    parts = _url_parts(value, ("https",))
    if parts is None:
        raise _Invalid("an https:// URL (Telegram only delivers webhooks over HTTPS)")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and port not in _TELEGRAM_WEBHOOK_PORTS:
        raise _Invalid("an https:// URL on port 443, 80, 88 or 8443 (the only ports Telegram delivers to)")
    assert isinstance(value, str)
    return value


def _listen_address(value: object) -> str:
    if isinstance(value, str) and (match := _LISTEN_RE.fullmatch(value)) and 0 < int(match[2]) <= 65535:
        return value
    raise _Invalid('"host:port" such as "127.0.0.1:8443"')


def _env_name(value: object) -> str:
    if isinstance(value, str) and _ENV_NAME_RE.fullmatch(value):
        return value
    raise _Invalid(f'the name of an environment variable such as "{DEFAULT_WEBHOOK_SECRET_ENV}"')


def _storage_url(value: object) -> str:
    expected = (
        'a database URL starting with "sqlite:///", "postgresql://" or "postgresql+psycopg://", '
        'such as "sqlite:///cohortbot.db"'
    )
    if not isinstance(value, str) or value != value.strip():
        raise _Invalid(expected)
    scheme, separator, rest = value.partition("://")
    if separator and rest:
        if scheme == "sqlite" and rest.startswith("/") and rest != "/":
            return value
        if scheme in ("postgresql", "postgresql+psycopg"):
            return value
    hint = None
    if scheme == "sqlite" and separator and not rest.startswith("/"):
        hint = f'SQLite URLs need three slashes: "sqlite:///{rest}"'
    elif scheme == "postgres":
        hint = 'write "postgresql://", SQLAlchemy does not accept "postgres://"'
    raise _Invalid(expected, hint)


def _slug(value: object) -> str:
    if isinstance(value, str) and len(value) <= _MAX_COURSE_ID_LENGTH and _SLUG_RE.fullmatch(value):
        return value
    raise _Invalid(
        f'a course id of lowercase letters, digits and "-" (at most {_MAX_COURSE_ID_LENGTH} characters) '
        'such as "py-async"'
    )


def _currency(value: object) -> str:
    if isinstance(value, str) and _CURRENCY_RE.fullmatch(value):
        return value
    raise _Invalid('a 3-letter uppercase ISO 4217 currency code such as "EUR"')


def _nudge_template(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    allowed = ", ".join(f"{{{name}}}" for name in NUDGE_PLACEHOLDERS)
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)]
    except ValueError as exc:
        raise _Invalid(f"a message whose placeholders are well-formed, like {{name}} ({exc})") from exc
    for name, spec, conversion in fields:
        if name is None:
            continue
        # Only bare names: "{name.__class__}" or "{0}" would let the template reach into Python objects.
        if name not in NUDGE_PLACEHOLDERS or spec or conversion:
            raw = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise _Invalid(f"a message using only the placeholders {allowed}", f"unknown placeholder {raw}")
    if NUDGES_OFF_COMMAND not in value:
        raise _Invalid(f'a message that tells members how to stop nudges (it must contain "{NUDGES_OFF_COMMAND}")')
    return value
