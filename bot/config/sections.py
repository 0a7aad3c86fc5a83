"""Per-section parsing: read each TOML table with its value checks, collect every problem, name unknown keys."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from bot.config.checks import (
    _billing,
    _bool,
    _busy_timeout,
    _clock_time,
    _currency,
    _discord_id,
    _discord_ids,
    _env_name,
    _help_channel_ids,
    _holdout_share,
    _host,
    _http_url,
    _listen_address,
    _non_empty_text,
    _non_negative_int,
    _nudge_template,
    _port,
    _positive_int,
    _price,
    _public_url,
    _quiet_hours,
    _reminder_days,
    _shard_ids,
    _shards,
    _slug,
    _stars_price,
    _storage_url,
    _stripe_price_id,
    _telegram_api_base_url,
    _telegram_chat_id,
    _telegram_chat_ids,
    _telegram_mode,
    _telegram_user_ids,
    _text,
    _timezone,
    _webhook_url,
    _websocket_url,
    _weekday,
)
from bot.config.errors import _Invalid, _show
from bot.config.settings import (
    DEFAULT_WEBHOOK_SECRET_ENV,
    DISCORD_TOKEN_ENV,
    METRICS_TOKEN_ENV,
    SECRET_ENV,
    STRIPE_API_KEY_ENV,
    STRIPE_WEBHOOK_SECRET_ENV,
    TELEGRAM_TOKEN_ENV,
    Billing,
    CheckoutSettings,
    CommunitySettings,
    CourseSettings,
    DashboardSettings,
    DigestSettings,
    DiscordSettings,
    HelpSettings,
    NudgeSettings,
    SalesSettings,
    ScheduleSettings,
    StorageSettings,
    StripeSettings,
    SurveySettings,
    TelegramSettings,
    WebSettings,
)

_SECTIONS: Final = (
    "community",
    "storage",
    "telegram",
    "discord",
    "digest",
    "nudges",
    "schedule",
    "web",
    "dashboard",
    "courses",
    "sales",
    "stripe",
    "checkout",
    "help",
    "surveys",
)


_T = TypeVar("_T")


class _Table:
    """Reads one TOML table and remembers which keys it knows, so leftovers can be reported as unknown."""

    def __init__(self, label: str, data: Mapping[str, Any], *, section: str) -> None:
        self.label = label
        self.section = section
        # The telegram section updates this so a pasted webhook secret points at the configured variable.
        self.webhook_secret_env = DEFAULT_WEBHOOK_SECRET_ENV
        self._data = data
        self._known: list[str] = []
        self._missing: list[str] = []
        self._key_errors: dict[str, str] = {}
        self._late_errors: list[str] = []

    def optional(self, key: str, check: Callable[[object], _T], default: _T) -> _T:
        """Return the checked value of ``key``; ``default`` if it is absent or invalid (error recorded)."""
        self._known.append(key)
        if key not in self._data:
            return default
        value = self._data[key]
        try:
            return check(value)
        except _Invalid as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            self._key_errors[key] = f"{self.label} {key}: expected {exc.expected}, got {_show(value)}{hint}"
            # Carry on with the default so every other key still gets checked in this pass.
            return default

    def required(self, key: str, check: Callable[[object], _T]) -> _T | None:
        """Like :meth:`optional`, but a missing key is an error; None means missing or invalid."""
        if key not in self._data:
            self._known.append(key)
            self._missing.append(f'{self.label}: missing required key "{key}"')
            return None
        return self.optional(key, check, None)

    def valid(self, *keys: str) -> bool:
        """True if none of ``keys`` had an error, so cross-key checks don't pile onto an existing message."""
        return not any(key in self._key_errors for key in keys)

    def present(self, key: str) -> bool:
        """True if ``key`` is set in the file."""
        return key in self._data

    def key_error(self, key: str, message: str) -> None:
        """Record a cross-key problem about ``key``."""
        self._late_errors.append(f"{self.label} {key}: {message}")

    def table_error(self, message: str) -> None:
        """Record a problem about the table as a whole."""
        self._late_errors.append(f"{self.label}: {message}")

    def finish(self) -> list[str]:
        """Return all problems: missing keys, then per-key problems in file order, then cross-key ones."""
        found = list(self._missing)
        for key in self._data:
            if key in self._key_errors:
                found.append(self._key_errors[key])
            elif key not in self._known:
                found.append(self._unknown_key(key))
        return found + self._late_errors

    def _unknown_key(self, key: str) -> str:
        env = _secret_env_for(self.section, key, self.webhook_secret_env)
        if env is not None:
            return (
                f"{self.label} {key}: secrets must not be stored in the config file; "
                f"remove this key and set the {env} environment variable instead"
            )
        close = difflib.get_close_matches(key, self._known, n=1)
        if close:
            return f'{self.label} {key}: unknown key (did you mean "{close[0]}"?)'
        return f"{self.label} {key}: unknown key (valid keys: {', '.join(self._known)})"


def _read_section(
    data: Mapping[str, Any], name: str, parse: Callable[[_Table], _T], errors: dict[str, list[str]]
) -> _T:
    raw = data.get(name, {})
    found: list[str] = []
    if not isinstance(raw, Mapping):
        found.append(f"[{name}]: expected a table, got {_show(raw)}")
        raw = {}
    table = _Table(f"[{name}]", raw, section=name)
    result = parse(table)
    errors[name] = found + table.finish()
    return result


def _unknown_top_level(key: str, value: object) -> str:
    env = _secret_env_for("", key, DEFAULT_WEBHOOK_SECRET_ENV)
    if env is not None:
        return (
            f"{key}: secrets must not be stored in the config file; "
            f"remove this key and set the {env} environment variable instead"
        )
    sections = ", ".join(_section_label(name) for name in _SECTIONS)
    if isinstance(value, Mapping) or _is_table_list(value):
        label = f"[[{key}]]" if _is_table_list(value) else f"[{key}]"
        close = difflib.get_close_matches(key, _SECTIONS, n=1)
        if close:
            return f"{label}: unknown section (did you mean {_section_label(close[0])}?)"
        return f"{label}: unknown section (known sections: {sections})"
    # A plain key at the top level usually means a forgotten section header above it.
    owners = " or ".join(_section_label(name) for name, keys in _section_keys().items() if key in keys)
    if owners:
        return f"{key}: unknown top-level key (did you mean to put it under {owners}?)"
    return f"{key}: unknown top-level key (options belong inside a section: {sections})"


def _section_label(name: str) -> str:
    return "[[courses]]" if name == "courses" else f"[{name}]"


def _section_keys() -> dict[str, tuple[str, ...]]:
    # Built on demand from the dataclasses so it can never drift from the real option names.
    classes: dict[str, type[Any]] = {
        "community": CommunitySettings,
        "storage": StorageSettings,
        "telegram": TelegramSettings,
        "discord": DiscordSettings,
        "digest": DigestSettings,
        "nudges": NudgeSettings,
        "schedule": ScheduleSettings,
        "web": WebSettings,
        "dashboard": DashboardSettings,
        "courses": CourseSettings,
        "sales": SalesSettings,
        "stripe": StripeSettings,
        "checkout": CheckoutSettings,
        "help": HelpSettings,
        "surveys": SurveySettings,
    }
    return {name: tuple(item.name for item in dataclasses.fields(cls)) for name, cls in classes.items()}


def _is_table_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _secret_env_for(section: str, key: str, webhook_env: str) -> str | None:
    """Name the environment variable a secret-looking key belongs in, or None if the key is not a secret."""
    name = key.lower().replace("-", "_")
    if "stripe" in name or section == "stripe":
        if "webhook" in name or "whsec" in name or name == "signing_secret":
            return STRIPE_WEBHOOK_SECRET_ENV
        if "key" in name or "secret" in name or "token" in name:
            return STRIPE_API_KEY_ENV
    if ("webhook" in name and ("secret" in name or "token" in name)) or name == "secret_token":
        return webhook_env
    if "metrics" in name and ("token" in name or "secret" in name):
        return METRICS_TOKEN_ENV
    if "token" in name:
        if section == "web" or "metrics" in name:
            return METRICS_TOKEN_ENV
        if "telegram" in name or (section == "telegram" and "discord" not in name):
            return TELEGRAM_TOKEN_ENV
        if "discord" in name or section == "discord":
            return DISCORD_TOKEN_ENV
        return f"{TELEGRAM_TOKEN_ENV} or {DISCORD_TOKEN_ENV}"
    if "secret" in name:
        return SECRET_ENV
    return None


def _parse_community(table: _Table) -> CommunitySettings:
    default = CommunitySettings()
    return CommunitySettings(
        name=table.optional("name", _non_empty_text, default.name),
        timezone=table.optional("timezone", _timezone, default.timezone),
    )


def _parse_storage(table: _Table) -> StorageSettings:
    default = StorageSettings()
    return StorageSettings(
        url=table.optional("url", _storage_url, default.url),
        store_text=table.optional("store_text", _bool, default.store_text),
        busy_timeout_seconds=table.optional("busy_timeout_seconds", _busy_timeout, default.busy_timeout_seconds),
    )


def _parse_telegram(table: _Table) -> TelegramSettings:
    default = TelegramSettings()
    settings = TelegramSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        chat_ids=table.optional("chat_ids", _telegram_chat_ids, default.chat_ids),
        owner_ids=table.optional("owner_ids", _telegram_user_ids, default.owner_ids),
        api_base_url=table.optional("api_base_url", _telegram_api_base_url, default.api_base_url),
        mode=table.optional("mode", _telegram_mode, default.mode),
        webhook_listen=table.optional("webhook_listen", _listen_address, default.webhook_listen),
        webhook_url=table.optional("webhook_url", _webhook_url, default.webhook_url),
        webhook_secret_env=table.optional("webhook_secret_env", _env_name, default.webhook_secret_env),
    )
    table.webhook_secret_env = settings.webhook_secret_env
    if settings.enabled and not settings.chat_ids and table.valid("enabled", "chat_ids"):
        table.key_error("chat_ids", "expected at least one Telegram chat ID because enabled = true, got []")
    if settings.mode == "webhook" and not table.present("webhook_url"):
        table.table_error(
            'missing required key "webhook_url" (needed because mode = "webhook"; '
            "expected the public https:// URL Telegram should deliver updates to)"
        )
    return settings


def _parse_discord(table: _Table) -> DiscordSettings:
    default = DiscordSettings()
    settings = DiscordSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        guild_ids=table.optional("guild_ids", _discord_ids, default.guild_ids),
        admin_role_ids=table.optional("admin_role_ids", _discord_ids, default.admin_role_ids),
        api_base_url=table.optional("api_base_url", _http_url, default.api_base_url),
        gateway_url=table.optional("gateway_url", _websocket_url, default.gateway_url),
        shards=table.optional("shards", _shards, default.shards),
        shard_ids=table.optional("shard_ids", _shard_ids, default.shard_ids),
        shard_count=table.optional("shard_count", _positive_int, default.shard_count),
        grant_test_entitlements=table.optional("grant_test_entitlements", _bool, default.grant_test_entitlements),
        message_content=table.optional("message_content", _bool, default.message_content),
    )
    if settings.enabled and not settings.guild_ids and table.valid("enabled", "guild_ids"):
        table.key_error("guild_ids", "expected at least one Discord server ID because enabled = true, got []")
    _check_shard_split(table, settings)
    return settings


def _check_shard_split(table: _Table, settings: DiscordSettings) -> None:
    """shard_ids/shard_count: which of the bot's shards this process connects (the others run elsewhere)."""
    if not table.valid("shards", "shard_ids", "shard_count"):
        return
    if table.present("shard_count") and table.present("shards"):
        table.key_error(
            "shard_count",
            "set either shards (every shard in this process) or shard_count with shard_ids (processes split "
            "the shards), not both",
        )
    ids = settings.shard_ids
    if ids is None:
        return
    if settings.shard_count is None:
        table.key_error(
            "shard_ids", "needs shard_count: the total number of shards across every process (e.g. shard_count = 4)"
        )
        return
    duplicates = sorted({n for n in ids if ids.count(n) > 1})
    if duplicates:
        table.key_error("shard_ids", f"lists shard {', '.join(map(str, duplicates))} more than once")
    too_big = [n for n in ids if n >= settings.shard_count]
    if too_big:
        table.key_error(
            "shard_ids",
            f"shard {', '.join(map(str, too_big))} is not below shard_count = {settings.shard_count} "
            f"(shards are numbered 0 to {settings.shard_count - 1})",
        )
    if not ids:
        table.key_error("shard_ids", "expected at least one shard number, got [] (leave it out for every shard)")


def _parse_digest(table: _Table) -> DigestSettings:
    default = DigestSettings()
    return DigestSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        weekday=table.optional("weekday", _weekday, default.weekday),
        time=table.optional("time", _clock_time, default.time),
        telegram_chat_ids=table.optional("telegram_chat_ids", _telegram_chat_ids, default.telegram_chat_ids),
        discord_channel_ids=table.optional("discord_channel_ids", _discord_ids, default.discord_channel_ids),
        send_to_owners=table.optional("send_to_owners", _bool, default.send_to_owners),
        top_members=table.optional("top_members", _positive_int, default.top_members),
    )


def _parse_nudges(table: _Table) -> NudgeSettings:
    default = NudgeSettings()
    return NudgeSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        inactive_after_days=table.optional("inactive_after_days", _positive_int, default.inactive_after_days),
        cooldown_days=table.optional("cooldown_days", _positive_int, default.cooldown_days),
        max_per_run=table.optional("max_per_run", _positive_int, default.max_per_run),
        max_per_minute=table.optional("max_per_minute", _positive_int, default.max_per_minute),
        max_per_day=table.optional("max_per_day", _positive_int, default.max_per_day),
        holdout_share=table.optional("holdout_share", _holdout_share, default.holdout_share),
        run_time=table.optional("run_time", _clock_time, default.run_time),
        quiet_hours=table.optional("quiet_hours", _quiet_hours, default.quiet_hours),
        template=table.optional("template", _nudge_template, default.template),
    )


def _parse_surveys(table: _Table) -> SurveySettings:
    default = SurveySettings()
    return SurveySettings(
        after_purchase_days=table.optional("after_purchase_days", _non_negative_int, default.after_purchase_days),
    )


def _parse_schedule(table: _Table) -> ScheduleSettings:
    default = ScheduleSettings()
    return ScheduleSettings(
        refresh_minutes=table.optional("refresh_minutes", _positive_int, default.refresh_minutes),
        reconcile_time=table.optional("reconcile_time", _clock_time, default.reconcile_time),
    )


def _parse_web(table: _Table) -> WebSettings:
    default = WebSettings()
    return WebSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        host=table.optional("host", _host, default.host),
        port=table.optional("port", _port, default.port),
        public_url=table.optional("public_url", _public_url, default.public_url),
    )


def _parse_dashboard(table: _Table) -> DashboardSettings:
    default = DashboardSettings()
    return DashboardSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        refresh_seconds=table.optional("refresh_seconds", _positive_int, default.refresh_seconds),
    )


def _parse_stripe(table: _Table) -> StripeSettings:
    default = StripeSettings()
    return StripeSettings(
        enabled=table.optional("enabled", _bool, default.enabled),
        success_url=table.optional("success_url", _checkout_return_url, default.success_url),
        cancel_url=table.optional("cancel_url", _checkout_return_url, default.cancel_url),
        api_base_url=table.optional("api_base_url", _http_url, default.api_base_url),
    )


def _checkout_return_url(value: object) -> str:
    return "" if value == "" else _http_url(value)


def _parse_checkout(table: _Table) -> CheckoutSettings:
    return CheckoutSettings(enabled=table.optional("enabled", _bool, CheckoutSettings().enabled))


def _parse_courses(data: Mapping[str, Any], errors: dict[str, list[str]]) -> tuple[CourseSettings, ...]:
    raw = data.get("courses", [])
    if not isinstance(raw, list | tuple):
        shown = "a table ([courses]); use [[courses]] with two brackets" if isinstance(raw, Mapping) else _show(raw)
        errors["courses"] = [f"[[courses]]: expected a list of course tables, got {shown}"]
        return ()
    found: list[str] = []
    courses: list[CourseSettings] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(raw, start=1):
        if not isinstance(entry, Mapping):
            found.append(f"[[courses]] #{number}: expected a table, got {_show(entry)}")
            continue
        table = _Table(f"[[courses]] #{number}", entry, section="courses")
        course = _parse_course(table, number, seen)
        found += table.finish()
        if course is not None:
            courses.append(course)
    errors["courses"] = found
    return tuple(courses)


def _parse_course(table: _Table, number: int, seen: dict[str, int]) -> CourseSettings | None:
    course_id = table.required("id", _slug)
    if course_id is not None:
        if course_id in seen:
            table.key_error(
                "id",
                f'expected a unique course id, got "{course_id}" (already used by #{seen[course_id]})',
            )
        else:
            seen[course_id] = number
        # From here on messages carry the id: "#3" alone is hard to find in a long file.
        table.label = f'[[courses]] #{number} (id "{course_id}")'
    title = table.required("title", _non_empty_text)
    description = table.optional("description", _text, "")
    price_stars = table.optional("price_stars", _stars_price, None)
    price = table.optional("price", _price, None)
    currency = table.optional("currency", _currency, None)
    checkout_url = table.optional("checkout_url", _http_url, None)
    telegram_chat_id = table.optional("telegram_chat_id", _telegram_chat_id, None)
    discord_role_id = table.optional("discord_role_id", _discord_id, None)
    discord_sku_id = table.optional("discord_sku_id", _discord_id, None)
    once: Billing = "once"
    billing = table.optional("billing", _billing, once)
    stripe_price_id = table.optional("stripe_price_id", _stripe_price_id, None)

    if not any(table.present(key) for key in ("price_stars", "price", "stripe_price_id")):
        table.table_error(
            'missing required key "price_stars", "price" or "stripe_price_id" (a course needs at least one price)'
        )
    if table.present("price") and not table.present("currency"):
        table.table_error('missing required key "currency" (needed because price is set)')
    if table.present("currency") and not table.present("price"):
        table.key_error("currency", 'only used together with "price", but price is not set')

    # A Stars subscription is Telegram's "pay to stay in this chat": without a chat there is nothing to renew.
    if billing == "monthly" and price_stars is not None and telegram_chat_id is None and table.valid("billing"):
        table.table_error(
            'missing required key "telegram_chat_id" (needed because billing = "monthly" with price_stars: '
            "a Telegram Stars subscription is access to a chat)"
        )

    if course_id is None or title is None:
        return None
    return CourseSettings(
        id=course_id,
        title=title,
        description=description,
        price_stars=price_stars,
        price=price,
        currency=currency,
        checkout_url=checkout_url,
        telegram_chat_id=telegram_chat_id,
        discord_role_id=discord_role_id,
        discord_sku_id=discord_sku_id,
        stripe_price_id=stripe_price_id,
        billing=billing,
    )


def _parse_sales(table: _Table) -> SalesSettings:
    default = SalesSettings()
    return SalesSettings(
        renewal_reminder_days=table.optional("renewal_reminder_days", _reminder_days, default.renewal_reminder_days),
        alert_chat=table.optional("alert_chat", _telegram_chat_id, default.alert_chat),
        alert_channel=table.optional("alert_channel", _discord_id, default.alert_channel),
    )


def _parse_help(table: _Table) -> HelpSettings:
    default = HelpSettings()
    settings = HelpSettings(
        channels=table.optional("channels", _help_channel_ids, default.channels),
        exclude=table.optional("exclude", _help_channel_ids, default.exclude),
        quiet_minutes=table.optional("quiet_minutes", _positive_int, default.quiet_minutes),
        answer_window_hours=table.optional("answer_window_hours", _positive_int, default.answer_window_hours),
        unanswered_after_hours=table.optional("unanswered_after_hours", _positive_int, default.unanswered_after_hours),
        ping_role=table.optional("ping_role", _discord_id, default.ping_role),
        ping_chat=table.optional("ping_chat", _telegram_chat_id, default.ping_chat),
    )
    both = set(settings.channels) & set(settings.exclude)
    if both and table.valid("channels", "exclude"):
        table.key_error("exclude", f"lists {', '.join(sorted(both))}, also listed in channels (keep it in one)")
    return settings
