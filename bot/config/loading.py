"""Loading: read the TOML file into settings, read the secrets from the environment, check they fit.

Secrets (bot tokens, the signing secret) never live in the file. Config files get committed, pasted into
support chats and backed up; secrets therefore come from the environment only (see :func:`load_secrets`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from bot.config.errors import ConfigError
from bot.config.sections import (
    _SECTIONS,
    _parse_checkout,
    _parse_community,
    _parse_courses,
    _parse_dashboard,
    _parse_digest,
    _parse_discord,
    _parse_help,
    _parse_nudges,
    _parse_sales,
    _parse_schedule,
    _parse_storage,
    _parse_stripe,
    _parse_surveys,
    _parse_telegram,
    _parse_web,
    _read_section,
    _unknown_top_level,
)
from bot.config.settings import (
    DISCORD_TOKEN_ENV,
    METRICS_TOKEN_ENV,
    SECRET_ENV,
    STRIPE_API_KEY_ENV,
    STRIPE_WEBHOOK_SECRET_ENV,
    TELEGRAM_TOKEN_ENV,
    Secrets,
    Settings,
)


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a TOML config file.

    Args:
        path: Path of the config file.

    Returns:
        The validated settings.

    Raises:
        ConfigError: The file cannot be read, is not valid TOML, or has invalid settings. All problems
            with the settings are reported together.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}", source=name) from exc
    try:
        # utf-8-sig: some editors (Notepad) save a byte-order mark, which tomllib would reject as garbage.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"{name}: invalid TOML: the file is not UTF-8 text (bad byte at offset {exc.start})"
        raise ConfigError(message, source=name) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: {exc}", source=name) from exc
    return parse_settings(data, source=name)


def parse_settings(data: Mapping[str, Any], *, source: str = "<config>") -> Settings:
    """Validate an already-parsed TOML document.

    Args:
        data: The document as returned by ``tomllib``.
        source: Label for where the data came from; stored on the raised ``ConfigError``.

    Returns:
        The validated settings; absent sections and keys get their defaults.

    Raises:
        ConfigError: With one message per problem, in the order the keys appear in the document.
    """
    errors: dict[str, list[str]] = {}
    community = _read_section(data, "community", _parse_community, errors)
    storage = _read_section(data, "storage", _parse_storage, errors)
    telegram = _read_section(data, "telegram", _parse_telegram, errors)
    discord = _read_section(data, "discord", _parse_discord, errors)
    digest = _read_section(data, "digest", _parse_digest, errors)
    nudges = _read_section(data, "nudges", _parse_nudges, errors)
    schedule = _read_section(data, "schedule", _parse_schedule, errors)
    web = _read_section(data, "web", _parse_web, errors)
    dashboard = _read_section(data, "dashboard", _parse_dashboard, errors)
    stripe = _read_section(data, "stripe", _parse_stripe, errors)
    checkout = _read_section(data, "checkout", _parse_checkout, errors)
    surveys = _read_section(data, "surveys", _parse_surveys, errors)
    courses = _parse_courses(data, errors)
    sales = _read_section(data, "sales", _parse_sales, errors)
    help_ = _read_section(data, "help", _parse_help, errors)
    for key, value in data.items():
        if key not in _SECTIONS:
            errors[key] = [_unknown_top_level(key, value)]
    # Alerts go through the platform's bot: one that does not run here would drop every alert without a word.
    if sales.alert_chat is not None and not telegram.enabled and not errors.get("telegram"):
        errors.setdefault("sales", []).append(
            f"[sales] alert_chat: {sales.alert_chat} is a Telegram chat, but [telegram] enabled = false, so no "
            "alert could be posted there; turn Telegram on or remove alert_chat"
        )
    if sales.alert_channel is not None and not discord.enabled and not errors.get("discord"):
        errors.setdefault("sales", []).append(
            f"[sales] alert_channel: {sales.alert_channel} is a Discord channel, but [discord] enabled = false, so "
            "no alert could be posted there; turn Discord on or remove alert_channel"
        )

    # Report in document order so the messages read top to bottom like the file.
    ordered = [message for key in data if key in errors for message in errors[key]]
    ordered += [message for key, found in errors.items() if key not in data for message in found]
    if ordered:
        raise ConfigError(ordered, source=source)
    return Settings(
        community=community,
        storage=storage,
        telegram=telegram,
        discord=discord,
        digest=digest,
        nudges=nudges,
        schedule=schedule,
        courses=courses,
        web=web,
        dashboard=dashboard,
        sales=sales,
        stripe=stripe,
        checkout=checkout,
        help=help_,
        surveys=surveys,
    )


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    """Read secrets from environment variables.

    Reads ``COHORTBOT_TELEGRAM_TOKEN``, ``COHORTBOT_DISCORD_TOKEN``, ``COHORTBOT_SECRET`` and the Stripe keys
    (``COHORTBOT_STRIPE_API_KEY``, ``COHORTBOT_STRIPE_WEBHOOK_SECRET``) and ``COHORTBOT_METRICS_TOKEN`` (a bearer
    token that lets a remote Prometheus read ``/metrics``). Empty values
    count as unset, and surrounding whitespace is dropped (``$(cat token.txt)`` keeps a trailing newline).

    Args:
        environ: Usually ``os.environ``.

    Returns:
        The secrets; missing ones are None.
    """

    def read(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    return Secrets(
        telegram_token=read(TELEGRAM_TOKEN_ENV),
        discord_token=read(DISCORD_TOKEN_ENV),
        signing_secret=read(SECRET_ENV),
        stripe_api_key=read(STRIPE_API_KEY_ENV),
        stripe_webhook_secret=read(STRIPE_WEBHOOK_SECRET_ENV),
        metrics_token=read(METRICS_TOKEN_ENV),
    )


def validate_secrets(settings: Settings, secrets: Secrets) -> list[str]:
    """Check that every secret the configuration needs is present.

    Args:
        settings: Validated settings.
        secrets: Secrets from :func:`load_secrets`.

    Returns:
        One message per missing secret, naming the environment variable to set; empty when all is well.
    """
    problems: list[str] = []
    if settings.telegram.enabled and secrets.telegram_token is None:
        problems.append(
            f"[telegram] enabled = true, but the {TELEGRAM_TOKEN_ENV} environment variable is not set "
            "(set it to the bot token from @BotFather)"
        )
    if settings.discord.enabled and secrets.discord_token is None:
        problems.append(
            f"[discord] enabled = true, but the {DISCORD_TOKEN_ENV} environment variable is not set "
            "(set it to the bot token from the Discord Developer Portal)"
        )
    # Purchases through the Telegram bot carry signed payloads, so a missing secret would let anyone forge
    # a "paid" callback. Every course is offered in Telegram when the Telegram bot is on.
    if settings.telegram.enabled and settings.courses and secrets.signing_secret is None:
        ids = ", ".join(f'"{course.id}"' for course in settings.courses)
        problems.append(
            f"[[courses]] {ids} are sold in Telegram, but the {SECRET_ENV} environment variable is not set "
            '(set it to a long random string, e.g. from: python -c "import secrets; '
            'print(secrets.token_urlsafe(32))")'
        )
    if settings.stripe.enabled:
        if secrets.stripe_api_key is None:
            problems.append(
                f"[stripe] enabled = true, but the {STRIPE_API_KEY_ENV} environment variable is not set "
                "(set it to a restricted or secret key from the Stripe dashboard, Developers > API keys)"
            )
        if secrets.stripe_webhook_secret is None:
            problems.append(
                f"[stripe] enabled = true, but the {STRIPE_WEBHOOK_SECRET_ENV} environment variable is not set "
                "(set it to the signing secret, whsec_..., of the webhook endpoint in the Stripe dashboard)"
            )
    # Stripe checkouts carry a signed reference to the buyer, and the generic webhook is signed with the secret.
    needs_secret = [f"[{name}] enabled = true" for name in ("stripe", "checkout") if getattr(settings, name).enabled]
    if needs_secret and secrets.signing_secret is None and not (settings.telegram.enabled and settings.courses):
        problems.append(
            f"{' and '.join(needs_secret)}, but the {SECRET_ENV} environment variable is not set "
            '(set it to a long random string, e.g. from: python -c "import secrets; '
            'print(secrets.token_urlsafe(32))")'
        )
    return problems
