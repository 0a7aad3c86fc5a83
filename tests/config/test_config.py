"""Tests for bot.config: what an owner sees when loading, mistyping or misusing the config file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import (
    ConfigError,
    Secrets,
    Settings,
    default_settings,
    load_secrets,
    load_settings,
    parse_settings,
    validate_secrets,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
# Shaped like a real Telegram bot token, so masking is tested against something realistic.
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def errors_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data)
    return caught.value.errors


def course(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "py-async", "title": "Async Python", "price_stars": 500}
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


# --------------------------------------------------------------------------------------------------------
# The example file


def test_example_loads_with_the_values_it_documents() -> None:
    settings = load_settings(EXAMPLE)

    assert settings.community.name == "PyCraft"
    assert settings.community.tz == ZoneInfo("Europe/Berlin")
    assert settings.storage.url == "sqlite:///cohortbot.db"
    assert settings.storage.store_text is False
    assert settings.storage.busy_timeout_seconds == 10
    assert settings.telegram.enabled is False
    assert settings.telegram.mode == "polling"
    assert settings.discord.enabled is False
    assert settings.discord.shards == 1
    assert settings.digest.weekday == "monday"
    assert settings.digest.time == dt.time(9, 0)
    assert settings.nudges.enabled is False
    assert settings.nudges.quiet_hours.contains(dt.time(23, 30))
    assert (settings.web.host, settings.web.port, settings.web.public_url) == ("127.0.0.1", 8787, "")
    assert settings.dashboard.enabled is False
    assert settings.dashboard.refresh_seconds == 30

    py_async, rust_intro, review = settings.courses
    assert (py_async.id, py_async.title) == ("py-async", "Async Python")
    assert py_async.price_stars == 500
    assert py_async.price == Decimal("49")
    assert py_async.currency == "EUR"
    assert py_async.checkout_url is not None and py_async.checkout_url.startswith("https://")
    assert rust_intro.id == "rust-intro"
    assert (py_async.billing, rust_intro.billing) == ("once", "once")
    assert (review.billing, review.price_stars, review.telegram_chat_id) == ("monthly", 250, -1001234500000)
    assert settings.sales.renewal_reminder_days == 3
    assert (settings.sales.alert_chat, settings.sales.alert_channel) == (None, None)


def test_example_documents_every_option() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    sections: dict[str, Any] = {
        "community": Settings().community,
        "storage": Settings().storage,
        "telegram": Settings().telegram,
        "discord": Settings().discord,
        "digest": Settings().digest,
        "nudges": Settings().nudges,
        "schedule": Settings().schedule,
        "web": Settings().web,
        "dashboard": Settings().dashboard,
        "sales": Settings().sales,
    }
    for section, defaults in sections.items():
        assert f"[{section}]" in text
        for option in dataclasses.fields(defaults):
            # Options without a default value (e.g. webhook_url) are shown commented out.
            assert re.search(rf"^#? ?{option.name} = ", text, re.MULTILINE), f"[{section}] {option.name}"
    course_keys = [option.name for option in dataclasses.fields(load_settings(EXAMPLE).courses[0])]
    for key in course_keys:
        assert re.search(rf"^#\s+{key}\s", text, re.MULTILINE), f"[[courses]] {key}"


def test_example_needs_no_secrets() -> None:
    assert validate_secrets(load_settings(EXAMPLE), load_secrets({})) == []


# --------------------------------------------------------------------------------------------------------
# Defaults


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("", encoding="utf-8")

    settings = load_settings(path)

    assert settings == default_settings()
    assert settings.community.name == "My community"
    assert settings.community.tz == ZoneInfo("UTC")
    assert settings.storage.url == "sqlite:///cohortbot.db"
    assert settings.storage.store_text is False
    assert settings.telegram.enabled is False
    assert settings.telegram.api_base_url == "https://api.telegram.org/bot"
    assert settings.telegram.webhook_secret_env == "COHORTBOT_TELEGRAM_WEBHOOK_SECRET"
    assert settings.discord.api_base_url == "https://discord.com/api/v10"
    assert settings.discord.gateway_url is None
    assert settings.digest.enabled is True
    assert settings.digest.top_members == 10
    assert settings.nudges.enabled is False
    assert settings.nudges.inactive_after_days == 14
    assert settings.nudges.holdout_share == pytest.approx(0.1)
    assert settings.nudges.run_time == dt.time(18, 0)
    assert settings.courses == ()


def test_default_nudge_template_uses_placeholders_and_says_how_to_opt_out() -> None:
    template = default_settings().nudges.template

    assert "/nudges off" in template
    assert template.format(name="Ada", community="PyCraft", since="3 March", highlights="").startswith("Hi Ada!")


def test_a_partial_section_keeps_the_other_defaults() -> None:
    settings = parse_settings({"nudges": {"enabled": True, "max_per_day": 10}})

    assert settings.nudges.enabled is True
    assert settings.nudges.max_per_day == 10
    assert settings.nudges.cooldown_days == 30
    assert settings.digest == default_settings().digest


def test_settings_cannot_be_changed_after_loading() -> None:
    settings = default_settings()

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.community.name = "changed"  # type: ignore[misc]


def test_price_is_an_exact_decimal() -> None:
    settings = parse_settings({"courses": [course(price=49.9, currency="EUR")]})

    assert settings.courses[0].price == Decimal("49.9")


def test_discord_shards_may_be_auto() -> None:
    assert parse_settings({"discord": {"shards": "auto"}}).discord.shards == "auto"


def test_discord_shard_split_between_processes() -> None:
    discord = parse_settings({"discord": {"shard_count": 4, "shard_ids": [2, 0]}}).discord
    assert (discord.shard_count, discord.shard_ids) == (4, (2, 0))
    assert parse_settings({"discord": {"shard_count": 2}}).discord.shard_ids is None  # every shard here


@pytest.mark.parametrize(
    ("discord", "message"),
    [
        ({"shard_ids": [0, 1]}, "[discord] shard_ids: needs shard_count: the total number of shards"),
        ({"shard_count": 2, "shard_ids": [1, 2]}, "[discord] shard_ids: shard 2 is not below shard_count = 2"),
        ({"shard_count": 4, "shard_ids": [1, 1, 3]}, "[discord] shard_ids: lists shard 1 more than once"),
        ({"shard_count": 4, "shard_ids": [-1]}, "[discord] shard_ids: expected a list of shard numbers"),
        ({"shard_count": 0}, "[discord] shard_count: expected a positive integer, got 0"),
        ({"shards": 2, "shard_count": 2}, "[discord] shard_count: set either shards"),
    ],
)
def test_discord_shard_split_mistakes_name_the_key(discord: dict[str, Any], message: str) -> None:
    (error,) = errors_of({"discord": discord})
    assert error.startswith(message), error


# --------------------------------------------------------------------------------------------------------
# Quiet hours


@pytest.mark.parametrize(
    ("window", "moment", "quiet"),
    [
        ("22:00-08:00", "23:59", True),
        ("22:00-08:00", "00:00", True),
        ("22:00-08:00", "07:59", True),
        ("22:00-08:00", "08:00", False),
        ("22:00-08:00", "12:00", False),
        ("22:00-08:00", "22:00", True),
        ("13:00-14:00", "13:30", True),
        ("13:00-14:00", "14:30", False),
        ("00:00-00:00", "03:00", False),
    ],
)
def test_quiet_hours_window(window: str, moment: str, quiet: bool) -> None:
    quiet_hours = parse_settings({"nudges": {"quiet_hours": window}}).nudges.quiet_hours

    assert quiet_hours.contains(dt.time.fromisoformat(moment)) is quiet


# --------------------------------------------------------------------------------------------------------
# One precise message per mistake


def test_missing_required_course_key() -> None:
    assert errors_of({"courses": [course(title=None)]}) == (
        '[[courses]] #1 (id "py-async"): missing required key "title"',
    )
    assert errors_of({"courses": [course(id=None)]}) == ('[[courses]] #1: missing required key "id"',)


def test_wrong_type() -> None:
    assert errors_of({"nudges": {"inactive_after_days": "soon"}}) == (
        '[nudges] inactive_after_days: expected a positive integer, got "soon"',
    )


def test_course_errors_name_the_course() -> None:
    data = {"courses": [course(id="rust-intro"), course(price_stars=-5)]}

    assert errors_of(data) == (
        '[[courses]] #2 (id "py-async") price_stars: expected a whole number of Telegram Stars from 1 to 10,000 '
        "(Telegram's most per invoice), got -5",
    )


def test_unknown_key_suggests_the_right_one() -> None:
    assert errors_of({"discord": {"guild_id": [1]}}) == ('[discord] guild_id: unknown key (did you mean "guild_ids"?)',)


def test_unknown_key_without_a_close_match_lists_the_valid_keys() -> None:
    assert errors_of({"storage": {"colour": "blue"}}) == (
        "[storage] colour: unknown key (valid keys: url, store_text, busy_timeout_seconds)",
    )


def test_unknown_section() -> None:
    assert errors_of({"nudge": {"enabled": True}}) == ("[nudge]: unknown section (did you mean [nudges]?)",)


def test_top_level_key_that_belongs_in_a_section() -> None:
    assert errors_of({"timezone": "Europe/Berlin"}) == (
        "timezone: unknown top-level key (did you mean to put it under [community]?)",
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert caught.value.errors == (f"cannot read config file {path}: No such file or directory",)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)

    assert caught.value.errors == (f"cannot read config file {tmp_path}: Is a directory",)


def test_invalid_toml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[community]\nname = "PyCraft"\ntimezone = \n', encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    (message,) = caught.value.errors
    # The rest of the text is tomllib's own wording; the owner needs the file and the position.
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in message


def test_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes('\ufeff[community]\nname = "PyCraft"\n'.encode())

    assert load_settings(path).community.name == "PyCraft"


def test_boolean_is_not_an_integer() -> None:
    assert errors_of({"digest": {"top_members": True}}) == (
        "[digest] top_members: expected a positive integer, got true",
    )
    assert errors_of({"telegram": {"chat_ids": [True]}}) == (
        "[telegram] chat_ids: expected a list of Telegram chat IDs (non-zero integers), got [true]",
    )


def test_integer_is_not_a_string() -> None:
    assert errors_of({"community": {"name": 42}}) == ("[community] name: expected a non-empty string, got 42",)


def test_quoted_ids_get_a_hint() -> None:
    assert errors_of({"discord": {"guild_ids": ["112233445566778899"]}}) == (
        '[discord] guild_ids: expected a list of Discord IDs (positive integers), got ["112233445566778899"] '
        "(write IDs as numbers without quotes)",
    )


def test_unquoted_toml_time_is_explained() -> None:
    assert errors_of({"digest": {"time": dt.time(9, 0)}}) == (
        '[digest] time: expected a 24-hour time "HH:MM" such as "09:00", '
        "got 09:00:00 (a TOML time value, not a quoted string)",
    )


def test_bad_timezone_suggests_the_right_one() -> None:
    assert errors_of({"community": {"timezone": "Europe/Berln"}}) == (
        '[community] timezone: expected an IANA time zone name such as "Europe/Berlin", '
        'got "Europe/Berln" (did you mean "Europe/Berlin"?)',
    )


def test_bad_quiet_hours() -> None:
    assert errors_of({"nudges": {"quiet_hours": "22:00 to 08:00"}}) == (
        '[nudges] quiet_hours: expected a time range "HH:MM-HH:MM" such as "22:00-08:00", got "22:00 to 08:00"',
    )
    assert errors_of({"nudges": {"quiet_hours": "25:00-08:00"}}) == (
        '[nudges] quiet_hours: expected a time range "HH:MM-HH:MM" such as "22:00-08:00", got "25:00-08:00"',
    )


def test_holdout_share_is_capped() -> None:
    assert errors_of({"nudges": {"holdout_share": 0.95}}) == (
        "[nudges] holdout_share: expected a number from 0 to 0.9, got 0.95",
    )


def test_duplicate_course_ids() -> None:
    data = {"courses": [course(), course(id="rust-intro"), course(title="Async Python, again")]}

    assert errors_of(data) == ('[[courses]] #3 id: expected a unique course id, got "py-async" (already used by #1)',)


def test_course_id_must_be_a_slug() -> None:
    assert errors_of({"courses": [course(id="Async Python")]}) == (
        '[[courses]] #1 id: expected a course id of lowercase letters, digits and "-" '
        '(at most 32 characters) such as "py-async", got "Async Python"',
    )


def test_course_needs_a_price() -> None:
    assert errors_of({"courses": [course(price_stars=None)]}) == (
        '[[courses]] #1 (id "py-async"): missing required key "price_stars", "price" or "stripe_price_id" '
        "(a course needs at least one price)",
    )


def test_price_needs_a_currency() -> None:
    assert errors_of({"courses": [course(price=49)]}) == (
        '[[courses]] #1 (id "py-async"): missing required key "currency" (needed because price is set)',
    )


def test_currency_must_be_an_iso_code() -> None:
    assert errors_of({"courses": [course(price=49, currency="eur")]}) == (
        '[[courses]] #1 (id "py-async") currency: expected a 3-letter uppercase ISO 4217 currency code '
        'such as "EUR", got "eur"',
    )


def test_courses_written_as_a_single_table() -> None:
    assert errors_of({"courses": {"id": "py-async"}}) == (
        "[[courses]]: expected a list of course tables, got a table ([courses]); use [[courses]] with two brackets",
    )


def test_token_in_the_file_points_to_the_environment_variable() -> None:
    errors = errors_of({"telegram": {"token": TELEGRAM_TOKEN}})

    assert errors == (
        "[telegram] token: secrets must not be stored in the config file; "
        "remove this key and set the COHORTBOT_TELEGRAM_TOKEN environment variable instead",
    )


@pytest.mark.parametrize(
    ("data", "variable"),
    [
        ({"discord": {"token": "x"}}, "COHORTBOT_DISCORD_TOKEN"),
        ({"community": {"discord_token": "x"}}, "COHORTBOT_DISCORD_TOKEN"),
        ({"telegram_token": "x"}, "COHORTBOT_TELEGRAM_TOKEN"),
        ({"storage": {"secret": "x"}}, "COHORTBOT_SECRET"),
        ({"telegram": {"webhook_secret": "x"}}, "COHORTBOT_TELEGRAM_WEBHOOK_SECRET"),
    ],
)
def test_every_secret_key_names_its_variable(data: dict[str, Any], variable: str) -> None:
    (message,) = errors_of(data)

    assert message.endswith(
        f"secrets must not be stored in the config file; remove this key and set the {variable} "
        "environment variable instead"
    )


def test_token_pasted_into_the_api_url_is_masked() -> None:
    (message,) = errors_of({"telegram": {"api_base_url": f"https://api.telegram.org/bot{TELEGRAM_TOKEN}"}})

    assert message.startswith("[telegram] api_base_url: expected an http(s) URL without the bot token")
    assert TELEGRAM_TOKEN.split(":")[1] not in message


def test_telegram_enabled_without_chats() -> None:
    assert errors_of({"telegram": {"enabled": True}}) == (
        "[telegram] chat_ids: expected at least one Telegram chat ID because enabled = true, got []",
    )


def test_discord_enabled_without_guilds() -> None:
    assert errors_of({"discord": {"enabled": True}}) == (
        "[discord] guild_ids: expected at least one Discord server ID because enabled = true, got []",
    )


def test_webhook_mode_needs_an_https_url() -> None:
    assert errors_of({"telegram": {"mode": "webhook"}}) == (
        '[telegram]: missing required key "webhook_url" (needed because mode = "webhook"; '
        "expected the public https:// URL Telegram should deliver updates to)",
    )
    assert errors_of({"telegram": {"mode": "webhook", "webhook_url": "http://bot.pycraft.dev/tg"}}) == (
        "[telegram] webhook_url: expected an https:// URL (Telegram only delivers webhooks over HTTPS), "
        'got "http://bot.pycraft.dev/tg"',
    )


def test_unsupported_database() -> None:
    assert errors_of({"storage": {"url": "mysql://localhost/cohortbot"}}) == (
        '[storage] url: expected a database URL starting with "sqlite:///", "postgresql://" or '
        '"postgresql+psycopg://", such as "sqlite:///cohortbot.db", got "mysql://localhost/cohortbot"',
    )


def test_database_password_is_not_echoed() -> None:
    (message,) = errors_of({"storage": {"url": "postgres://bot:hunter2@db/cohortbot"}})

    assert "hunter2" not in message
    assert message.endswith('(write "postgresql://", SQLAlchemy does not accept "postgres://")')


def test_database_password_is_not_in_the_settings_repr() -> None:
    settings = parse_settings({"storage": {"url": "postgresql+psycopg://bot:hunter2@db/cohortbot"}})

    assert settings.storage.url == "postgresql+psycopg://bot:hunter2@db/cohortbot"
    assert "hunter2" not in repr(settings)


def test_nudge_template_placeholders_are_checked() -> None:
    assert errors_of({"nudges": {"template": "Hey {username}! Send /nudges off to stop."}}) == (
        "[nudges] template: expected a message using only the placeholders {name}, {community}, {since}, {highlights}, "
        'got "Hey {username}! Send /nudges off to stop." (unknown placeholder {username})',
    )


def test_nudge_template_must_offer_an_opt_out() -> None:
    assert errors_of({"nudges": {"template": "Hey {name}, come back!"}}) == (
        "[nudges] template: expected a message that tells members how to stop nudges "
        '(it must contain "/nudges off"), got "Hey {name}, come back!"',
    )


def test_all_errors_are_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        """
[community]
timezone = "Mars/Olympus"

[nudges]
inactive_after_days = "soon"
max_per_day = true

[discord]
guild_id = [1]

[[courses]]
id = "py-async"
price_stars = 500
""",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    expected = (
        '[community] timezone: expected an IANA time zone name such as "Europe/Berlin", got "Mars/Olympus"',
        '[nudges] inactive_after_days: expected a positive integer, got "soon"',
        "[nudges] max_per_day: expected a positive integer, got true",
        '[discord] guild_id: unknown key (did you mean "guild_ids"?)',
        '[[courses]] #1 (id "py-async"): missing required key "title"',
    )
    assert caught.value.errors == expected
    assert str(caught.value) == "\n".join(expected)


# --------------------------------------------------------------------------------------------------------
# Secrets


def test_secrets_come_from_the_environment() -> None:
    secrets = load_secrets(
        {
            "COHORTBOT_TELEGRAM_TOKEN": f"{TELEGRAM_TOKEN}\n",
            "COHORTBOT_DISCORD_TOKEN": "",
            "COHORTBOT_SECRET": "s3cret-s3cret",
        }
    )

    assert secrets.telegram_token == TELEGRAM_TOKEN
    assert secrets.discord_token is None
    assert secrets.signing_secret == "s3cret-s3cret"


def test_secrets_repr_does_not_leak() -> None:
    secrets = Secrets(
        telegram_token=TELEGRAM_TOKEN, discord_token=None, signing_secret="s3cret-s3cret", metrics_token="m3trics"
    )

    for rendered in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert TELEGRAM_TOKEN not in rendered
        assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in rendered
        assert "s3cret" not in rendered
        assert "m3trics" not in rendered
    assert repr(secrets) == (
        "Secrets(telegram_token='***', discord_token=None, signing_secret='***', "
        "stripe_api_key=None, stripe_webhook_secret=None, metrics_token='***')"
    )


def test_the_metrics_token_comes_from_the_environment_and_never_from_the_file() -> None:
    assert load_secrets({"COHORTBOT_METRICS_TOKEN": " scrape-me \n"}).metrics_token == "scrape-me"
    assert load_secrets({"COHORTBOT_METRICS_TOKEN": ""}).metrics_token is None
    with pytest.raises(ConfigError) as caught:
        parse_settings({"web": {"metrics_token": "scrape-me"}})
    assert "set the COHORTBOT_METRICS_TOKEN environment variable" in str(caught.value)
    assert "scrape-me" not in str(caught.value)


def test_web_enabled_starts_the_web_server_without_dashboard_or_payments() -> None:
    assert not parse_settings({}).serves_web
    settings = parse_settings({"web": {"enabled": True}})
    assert settings.web.enabled and settings.serves_web
    with pytest.raises(ConfigError) as caught:
        parse_settings({"web": {"enabled": "yes"}})
    assert "[web] enabled" in str(caught.value)


def test_enabled_platforms_need_their_tokens() -> None:
    settings = parse_settings(
        {"telegram": {"enabled": True, "chat_ids": [-1001]}, "discord": {"enabled": True, "guild_ids": [1]}}
    )

    assert validate_secrets(settings, load_secrets({})) == [
        "[telegram] enabled = true, but the COHORTBOT_TELEGRAM_TOKEN environment variable is not set "
        "(set it to the bot token from @BotFather)",
        "[discord] enabled = true, but the COHORTBOT_DISCORD_TOKEN environment variable is not set "
        "(set it to the bot token from the Discord Developer Portal)",
    ]
    environ = {"COHORTBOT_TELEGRAM_TOKEN": TELEGRAM_TOKEN, "COHORTBOT_DISCORD_TOKEN": "discord-token"}
    assert validate_secrets(settings, load_secrets(environ)) == []


def test_courses_sold_in_telegram_need_the_signing_secret() -> None:
    settings = parse_settings(
        {"telegram": {"enabled": True, "chat_ids": [-1001]}, "courses": [course(), course(id="rust-intro")]}
    )
    environ = {"COHORTBOT_TELEGRAM_TOKEN": TELEGRAM_TOKEN}

    assert validate_secrets(settings, load_secrets(environ)) == [
        '[[courses]] "py-async", "rust-intro" are sold in Telegram, but the COHORTBOT_SECRET environment '
        'variable is not set (set it to a long random string, e.g. from: python -c "import secrets; '
        'print(secrets.token_urlsafe(32))")',
    ]
    assert validate_secrets(settings, load_secrets({**environ, "COHORTBOT_SECRET": "x" * 32})) == []


def test_schedule_section_is_checked() -> None:
    assert errors_of({"schedule": {"refresh_minutes": 0, "reconcile_time": "4am"}})[0].startswith(
        "[schedule] refresh_minutes: expected a positive integer"
    )
    assert any("[schedule] reconcile_time" in e for e in errors_of({"schedule": {"reconcile_time": "4am"}}))
    assert parse_settings({"schedule": {"reconcile_time": "03:15"}}).schedule.reconcile_time.hour == 3


# --------------------------------------------------------------------------------------------------------
# Values the platforms cannot take


STARS = "expected a whole number of Telegram Stars from 1 to 10,000 (Telegram's most per invoice)"


@pytest.mark.parametrize("price", [0, 10_001, 1_000_000])
def test_stars_price_must_be_one_telegram_can_invoice(price: int) -> None:
    assert errors_of({"courses": [course(price_stars=price)]}) == (
        f'[[courses]] #1 (id "py-async") price_stars: {STARS}, got {price}',
    )


@pytest.mark.parametrize("price", [1, 10_000])
def test_stars_prices_at_the_bounds_are_fine(price: int) -> None:
    (loaded,) = parse_settings({"courses": [course(price_stars=price)]}).courses
    assert loaded.price_stars == price


BIG = 2**63  # one more than a signed 64-bit integer holds
LIMIT = "9223372036854775807"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"telegram": {"owner_ids": [1, BIG]}},
            "[telegram] owner_ids: expected a list of Telegram user IDs (positive integers), each fitting in 64 "
            f"bits (at most {LIMIT}), got [1, {BIG}]",
        ),
        (
            {"telegram": {"chat_ids": [-BIG - 1]}},
            "[telegram] chat_ids: expected a list of Telegram chat IDs (non-zero integers), each fitting in 64 bits "
            f"(-9223372036854775808 to {LIMIT}), got [-{BIG + 1}]",
        ),
        (
            {"discord": {"guild_ids": [2**64 - 1]}},
            "[discord] guild_ids: expected a list of Discord IDs (positive integers), each fitting in 64 bits "
            f"(at most {LIMIT}), got [{2**64 - 1}]",
        ),
        (
            {"discord": {"admin_role_ids": [BIG]}},
            "[discord] admin_role_ids: expected a list of Discord IDs (positive integers), each fitting in 64 bits "
            f"(at most {LIMIT}), got [{BIG}]",
        ),
        (
            {"digest": {"discord_channel_ids": [BIG]}},
            "[digest] discord_channel_ids: expected a list of Discord IDs (positive integers), each fitting in 64 "
            f"bits (at most {LIMIT}), got [{BIG}]",
        ),
        (
            {"courses": [course(discord_role_id=BIG)]},
            f'[[courses]] #1 (id "py-async") discord_role_id: expected a Discord ID fitting in 64 bits (1 to {LIMIT}), '
            f"got {BIG}",
        ),
        (
            {"courses": [course(discord_sku_id=BIG)]},
            f'[[courses]] #1 (id "py-async") discord_sku_id: expected a Discord ID fitting in 64 bits (1 to {LIMIT}), '
            f"got {BIG}",
        ),
        (
            {"courses": [course(telegram_chat_id=-BIG - 1)]},
            '[[courses]] #1 (id "py-async") telegram_chat_id: expected a Telegram chat ID fitting in 64 bits '
            f"(-9223372036854775808 to {LIMIT}), got -{BIG + 1}",
        ),
    ],
)
def test_ids_outside_64_bits_are_refused(data: dict[str, Any], error: str) -> None:
    assert errors_of(data) == (error,)


def test_ids_at_the_64_bit_bounds_are_fine() -> None:
    settings = parse_settings(
        {"telegram": {"chat_ids": [-(2**63)], "owner_ids": [2**63 - 1]}, "discord": {"guild_ids": [2**63 - 1]}}
    )
    assert settings.telegram.chat_ids == (-(2**63),)
    assert settings.discord.guild_ids == (2**63 - 1,)


@pytest.mark.parametrize("value", [0, -1, 3601, "10"])
def test_busy_timeout_must_be_a_sensible_number_of_seconds(value: object) -> None:
    (error,) = errors_of({"storage": {"busy_timeout_seconds": value}})
    assert error.startswith("[storage] busy_timeout_seconds: expected a number of seconds above 0 and at most 3600")


# --------------------------------------------------------------------------------------------------------
# The web server and the dashboard


def test_web_and_dashboard_sections_are_read() -> None:
    settings = parse_settings(
        {
            "web": {"host": "0.0.0.0", "port": 9000, "public_url": "https://stats.example.org/"},
            "dashboard": {"enabled": True, "refresh_seconds": 5},
        }
    )
    assert (settings.web.host, settings.web.port) == ("0.0.0.0", 9000)
    # The trailing slash is dropped so links read https://stats.example.org/login?t=...
    assert settings.web.public_url == "https://stats.example.org"
    assert settings.dashboard.enabled is True
    assert settings.dashboard.refresh_seconds == 5


def test_web_host_accepts_ipv6_in_brackets() -> None:
    assert parse_settings({"web": {"host": "[::1]"}}).web.host == "::1"
    assert parse_settings({"web": {"host": "::"}}).web.host == "::"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"web": {"port": 0}}, "[web] port: expected a port number from 1 to 65535, got 0"),
        ({"web": {"port": 70000}}, "[web] port: expected a port number from 1 to 65535, got 70000"),
        ({"web": {"port": "8787"}}, "[web] port: expected a port number from 1 to 65535"),
        ({"web": {"host": "127.0.0.1:8787"}}, "[web] host: expected a host name or IP address without a port"),
        ({"web": {"public_url": "ftp://x.org"}}, "[web] public_url: expected an http:// or https:// URL"),
        ({"web": {"public_url": "https://x.org/?a=1"}}, "[web] public_url: expected an http:// or https:// URL"),
        ({"dashboard": {"enabled": "yes"}}, "[dashboard] enabled: expected true or false"),
        ({"dashboard": {"refresh_seconds": 0}}, "[dashboard] refresh_seconds: expected a positive integer"),
    ],
)
def test_web_and_dashboard_values_are_checked(data: dict[str, Any], error: str) -> None:
    assert errors_of(data)[0].startswith(error)


def test_web_and_dashboard_unknown_keys_are_named() -> None:
    assert errors_of({"web": {"prot": 80}}) == ('[web] prot: unknown key (did you mean "port"?)',)
    assert errors_of({"dashboard": {"enable": True}}) == ('[dashboard] enable: unknown key (did you mean "enabled"?)',)
    assert errors_of({"dashbord": {}}) == ("[dashbord]: unknown section (did you mean [dashboard]?)",)


# --------------------------------------------------------------------------------------------------------
# Monthly courses and the [sales] section


def test_monthly_course_and_sales_section_are_read() -> None:
    settings = parse_settings(
        {
            "courses": [course(billing="monthly", telegram_chat_id=-1001)],
            "sales": {"renewal_reminder_days": 5, "alert_chat": -1002, "alert_channel": 123456789},
            "telegram": {"enabled": True, "chat_ids": [-1003]},
            "discord": {"enabled": True, "guild_ids": [42]},
        }
    )
    assert settings.courses[0].billing == "monthly"
    assert settings.sales.renewal_reminder_days == 5
    assert (settings.sales.alert_chat, settings.sales.alert_channel) == (-1002, 123456789)


def test_sale_alerts_need_the_platform_they_post_to() -> None:
    assert errors_of({"sales": {"alert_chat": -1002, "alert_channel": 123456789}}) == (
        "[sales] alert_chat: -1002 is a Telegram chat, but [telegram] enabled = false, so no alert could be posted "
        "there; turn Telegram on or remove alert_chat",
        "[sales] alert_channel: 123456789 is a Discord channel, but [discord] enabled = false, so no alert could be "
        "posted there; turn Discord on or remove alert_channel",
    )


def test_billing_defaults_to_once_and_sales_to_three_day_reminders() -> None:
    settings = parse_settings({"courses": [course()]})
    assert settings.courses[0].billing == "once"
    assert settings.sales.renewal_reminder_days == 3
    assert settings.sales.alert_chat is None and settings.sales.alert_channel is None


def test_monthly_stars_course_needs_a_chat() -> None:
    assert errors_of({"courses": [course(billing="monthly")]}) == (
        '[[courses]] #1 (id "py-async"): missing required key "telegram_chat_id" (needed because billing = '
        '"monthly" with price_stars: a Telegram Stars subscription is access to a chat)',
    )


def test_monthly_course_without_stars_needs_no_chat() -> None:
    data = {"courses": [course(price_stars=None, price=9, currency="EUR", billing="monthly", discord_role_id=5)]}
    assert parse_settings(data).courses[0].billing == "monthly"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"courses": [course(billing="yearly")]},
            '[[courses]] #1 (id "py-async") billing: expected "once" or "monthly", got "yearly"',
        ),
        (
            {"courses": [course(billing=True)]},
            '[[courses]] #1 (id "py-async") billing: expected "once" or "monthly", got true',
        ),
        (
            {"sales": {"renewal_reminder_days": 30}},
            "[sales] renewal_reminder_days: expected a whole number of days from 0 (no reminders) to 29, got 30",
        ),
        (
            {"sales": {"renewal_reminder_days": -1}},
            "[sales] renewal_reminder_days: expected a whole number of days from 0",
        ),
        ({"sales": {"renewal_reminder_days": "3"}}, "[sales] renewal_reminder_days: expected a whole number of days"),
        ({"sales": {"alert_chat": 0}}, "[sales] alert_chat: expected a Telegram chat ID (a non-zero integer), got 0"),
        ({"sales": {"alert_chat": "-100123"}}, "[sales] alert_chat: expected a Telegram chat ID"),
        ({"sales": {"alert_channel": -5}}, "[sales] alert_channel: expected a Discord ID (a positive integer), got -5"),
    ],
)
def test_billing_and_sales_values_are_checked(data: dict[str, Any], error: str) -> None:
    assert errors_of(data)[0].startswith(error)


def test_sales_unknown_keys_are_named() -> None:
    assert errors_of({"sales": {"alert_chanel": 1}}) == (
        '[sales] alert_chanel: unknown key (did you mean "alert_channel"?)',
    )
    assert errors_of({"sale": {}}) == ("[sale]: unknown section (did you mean [sales]?)",)
    assert errors_of({"alert_chat": -1}) == (
        "alert_chat: unknown top-level key (did you mean to put it under [sales]?)",
    )
