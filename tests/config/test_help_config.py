"""``[help]``: help channels by platform id, thresholds and pings, with clear errors for bad values."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, HelpSettings, parse_settings


def test_help_channels_take_ids_and_telegram_topics() -> None:
    settings = parse_settings(
        {"help": {"channels": [429676282196787200, -1001234, "-1001234#7"], "exclude": [99], "quiet_minutes": 20}}
    )
    assert settings.help.channels == ("429676282196787200", "-1001234", "-1001234#7")
    assert (settings.help.exclude, settings.help.quiet_minutes) == (("99",), 20)


def test_help_defaults() -> None:
    assert parse_settings({}).help == HelpSettings()
    assert (HelpSettings().quiet_minutes, HelpSettings().answer_window_hours) == (30, 24)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"channels": ["123"]}, "write plain IDs as numbers without quotes"),
        ({"channels": ["#general"]}, "[help] channels: expected a list of channel IDs"),
        ({"channels": [1], "exclude": [1]}, "[help] exclude: lists 1, also listed in channels"),
        ({"quiet_minutes": 0}, "[help] quiet_minutes: expected a positive integer, got 0"),
        ({"ping_role": -5}, "[help] ping_role: expected a Discord ID (a positive integer), got -5"),
        ({"ping_chat": 0}, "[help] ping_chat: expected a Telegram chat ID"),
        ({"channel": [1]}, '[help] channel: unknown key (did you mean "channels"?)'),
    ],
)
def test_bad_help_values_are_named(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings({"help": section})
    assert any(message in error for error in raised.value.errors), raised.value.errors
