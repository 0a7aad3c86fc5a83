"""The slash-command tree, built from the dispatcher's command specs, and the persistent command button.

Commands are not written out by hand here: every :class:`CommandSpec` becomes an ``app_commands.Command`` whose
options mirror the spec (``course`` → a choice of the configured courses, ``member`` → a user picker, ``choice``
→ its choices, ``text`` → a string). The callbacks do not use discord.py's converted arguments: the adapter
translates the raw interaction payload itself (``translate.command_invocation``) so one tested code path turns
every interaction into a :class:`CommandInvocation`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Optional

import discord
from discord import app_commands

from bot.config import CourseSettings
from bot.core.commands.base import CommandSpec, OptionSpec

from .translate import COMMAND_BUTTON_PREFIX

DESCRIPTION_LIMIT = 100
CHOICES_LIMIT = 25  # Discord's limit; with more courses the option becomes free text (the dispatcher validates)

CommandCallback = Callable[[discord.Interaction[Any], CommandSpec], Awaitable[None]]
ButtonCallback = Callable[[discord.Interaction[Any]], Awaitable[None]]


def _choices(option: OptionSpec, courses: Sequence[CourseSettings]) -> list[app_commands.Choice[str]]:
    if option.kind == "course" and len(courses) <= CHOICES_LIMIT:
        return [app_commands.Choice(name=c.title[:DESCRIPTION_LIMIT], value=c.id) for c in courses]
    if option.kind == "choice":
        return [app_commands.Choice(name=value, value=value) for value in option.choices[:CHOICES_LIMIT]]
    return []


def build_command(
    spec: CommandSpec,
    *,
    courses: Sequence[CourseSettings],
    on_command: CommandCallback,
    hide_admin_commands: bool,
) -> app_commands.Command[Any, ..., None]:
    """One slash command for ``spec``.

    Args:
        spec: The command.
        courses: The configured courses (choices of ``course`` options).
        on_command: Called with the interaction and the spec when a member runs the command.
        hide_admin_commands: Show admin commands only to members with Manage Server by default. Only a
            convenience for the picker: the adapter checks admin rights on every invocation regardless.

    Returns:
        The command, ready to be added to a tree.
    """
    parameters = [
        inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)
    ]
    descriptions: dict[str, str] = {}
    choices: dict[str, list[app_commands.Choice[str]]] = {}
    for option in spec.options:
        annotation: Any = discord.User if option.kind == "member" else str
        default: Any = inspect.Parameter.empty
        if not option.required:
            annotation, default = Optional[annotation], None  # noqa: UP045 - discord.py inspects this object
        parameters.append(
            inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        )
        descriptions[option.name] = (option.description or option.name)[:DESCRIPTION_LIMIT]
        if found := _choices(option, courses):
            choices[option.name] = found

    async def callback(interaction: discord.Interaction[Any], **_: object) -> None:
        await on_command(interaction, spec)

    # discord.py reads a command's options from its callback's signature; the signature is generated from the
    # spec so the tree always matches the dispatcher's commands.
    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    setattr(callback, "__discord_app_commands_param_description__", descriptions)  # noqa: B010
    setattr(callback, "__discord_app_commands_param_choices__", choices)  # noqa: B010
    command: app_commands.Command[Any, ..., None] = app_commands.Command(
        name=spec.name, description=(spec.help or spec.name)[:DESCRIPTION_LIMIT], callback=callback
    )
    if spec.admin and hide_admin_commands:
        command.default_permissions = discord.Permissions(manage_guild=True)
    return command


def build_tree(
    client: discord.Client,
    specs: Iterable[CommandSpec],
    *,
    guild_ids: Sequence[int],
    courses: Sequence[CourseSettings],
    admin_role_ids: Sequence[int],
    on_command: CommandCallback,
) -> app_commands.CommandTree[Any]:
    """The client's command tree with every command registered to each configured guild.

    Guild commands (not global ones) because the bot serves specific servers and guild commands update at once.
    Admin commands are hidden from non-managers by default only when no ``admin_role_ids`` are configured: with
    admin roles, hiding them would also hide them from those roles' members.
    """
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)
    guilds = [discord.Object(id=g) for g in guild_ids]
    for spec in specs:
        command = build_command(spec, courses=courses, on_command=on_command, hide_admin_commands=not admin_role_ids)
        tree.add_command(command, guilds=guilds)
    return tree


def command_button_class(on_press: ButtonCallback) -> type[discord.ui.DynamicItem[discord.ui.Button[Any]]]:
    """A persistent button type for ``cmd:<command line>`` custom ids, calling ``on_press`` when pressed.

    A class per adapter (not module-level) so the callback reaches that adapter without a global. Being a
    dynamic item, it answers presses on buttons sent before a restart too.
    """
    template = re.compile(re.escape(COMMAND_BUTTON_PREFIX) + r"(?P<line>.+)", re.DOTALL)

    class CommandButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=template):
        @classmethod
        async def from_custom_id(
            cls,
            interaction: discord.Interaction[Any],
            item: discord.ui.Item[Any],
            match: re.Match[str],
            /,
        ) -> CommandButton:
            assert isinstance(item, discord.ui.Button)
            return cls(item)

        async def callback(self, interaction: discord.Interaction[Any]) -> None:
            await on_press(interaction)

    return CommandButton
