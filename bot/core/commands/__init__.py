"""The command set: member commands first, then admin commands."""

from __future__ import annotations

from bot.core.commands.base import CommandSpec


def all_commands() -> tuple[CommandSpec, ...]:
    """Every command the bot answers, in the order ``/help`` lists them."""
    from bot.core.commands.admin import ADMIN_COMMANDS
    from bot.core.commands.member import MEMBER_COMMANDS
    from bot.core.commands.questions import QUESTION_COMMANDS
    from bot.core.commands.subscriptions import SUBSCRIPTION_COMMANDS
    from bot.core.commands.surveys import SURVEY_ADMIN_COMMANDS, SURVEY_MEMBER_COMMANDS

    return (
        MEMBER_COMMANDS
        + SUBSCRIPTION_COMMANDS
        + SURVEY_MEMBER_COMMANDS
        + ADMIN_COMMANDS
        + QUESTION_COMMANDS
        + SURVEY_ADMIN_COMMANDS
    )
