"""Typed, validated configuration for cohortbot.

The config file is TOML. It is parsed once at startup into frozen dataclasses so the rest of the bot can rely
on the types and never has to re-validate or guard against a setting changing underneath it.

Validation collects *every* problem in one pass: the owner edits the file by hand, and fixing one error per
restart is miserable. Each message names the key path, what was expected and what was found, so the file can
be fixed from the message alone.

Secrets (bot tokens, the signing secret) never live in the file. Config files get committed, pasted into
support chats and backed up; secrets therefore come from the environment only (see :func:`load_secrets`).

The package: ``settings`` (the dataclasses and defaults), ``loading`` (file and secrets), ``sections``
(per-section parsing), ``checks`` (value checks), ``errors`` (``ConfigError`` and how values are quoted back).
Import public names from ``bot.config``.
"""

from bot.config.errors import ConfigError
from bot.config.loading import load_secrets, load_settings, parse_settings, validate_secrets
from bot.config.settings import (
    BILLING_PERIOD_DAYS,
    DEFAULT_NUDGE_TEMPLATE,
    DEFAULT_WEBHOOK_SECRET_ENV,
    DISCORD_TOKEN_ENV,
    METRICS_TOKEN_ENV,
    NUDGE_PLACEHOLDERS,
    NUDGES_OFF_COMMAND,
    SECRET_ENV,
    STRIPE_API_KEY_ENV,
    STRIPE_WEBHOOK_SECRET_ENV,
    TELEGRAM_TOKEN_ENV,
    WEEKDAYS,
    Billing,
    CheckoutSettings,
    CommunitySettings,
    CourseSettings,
    DashboardSettings,
    DigestSettings,
    DiscordSettings,
    HelpSettings,
    NudgeSettings,
    QuietHours,
    SalesSettings,
    Secrets,
    Settings,
    StorageSettings,
    StripeSettings,
    SurveySettings,
    TelegramMode,
    TelegramSettings,
    WebSettings,
    Weekday,
    default_settings,
)

__all__ = [
    "BILLING_PERIOD_DAYS",
    "DEFAULT_NUDGE_TEMPLATE",
    "DEFAULT_WEBHOOK_SECRET_ENV",
    "DISCORD_TOKEN_ENV",
    "METRICS_TOKEN_ENV",
    "NUDGES_OFF_COMMAND",
    "NUDGE_PLACEHOLDERS",
    "SECRET_ENV",
    "STRIPE_API_KEY_ENV",
    "STRIPE_WEBHOOK_SECRET_ENV",
    "TELEGRAM_TOKEN_ENV",
    "WEEKDAYS",
    "Billing",
    "CheckoutSettings",
    "CommunitySettings",
    "ConfigError",
    "CourseSettings",
    "DashboardSettings",
    "DigestSettings",
    "DiscordSettings",
    "HelpSettings",
    "NudgeSettings",
    "QuietHours",
    "SalesSettings",
    "Secrets",
    "Settings",
    "StorageSettings",
    "StripeSettings",
    "SurveySettings",
    "TelegramMode",
    "TelegramSettings",
    "WebSettings",
    "Weekday",
    "default_settings",
    "load_secrets",
    "load_settings",
    "parse_settings",
    "validate_secrets",
]
