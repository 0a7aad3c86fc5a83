"""The dispatcher: options parsed the same for every platform, permissions checked, errors never escape."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from bot.clock import SystemClock
from bot.config import default_settings
from bot.core.commands.base import CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.dispatcher import Dispatcher, parse_options
from bot.core.replies import Reply
from storage.events import CommandInvocation, MemberRef, Platform
from tests.helpers.fake_actions import FakeActions

AT = datetime(2024, 3, 4, tzinfo=UTC)


async def echo(ctx: CommandContext) -> Reply:
    """Say the options back."""
    return Reply.say(repr(dict(sorted(ctx.options.items()))))


async def broken(ctx: CommandContext) -> Reply:
    """Fail like a bug would."""
    raise ZeroDivisionError("boom")


GRANT = CommandSpec(
    "grant",
    echo,
    (OptionSpec("member", "who", "member"), OptionSpec("course", "what", "course")),
    admin=True,
)
NOTE = CommandSpec(
    "note",
    echo,
    (OptionSpec("state", "on or off", "choice", False, ("on", "off")), OptionSpec("text", "t", required=False)),
)


def dispatcher() -> Dispatcher:
    settings = default_settings()
    d = Dispatcher(
        [GRANT, NOTE, CommandSpec("broken", broken)],
        settings=settings,
        engine=None,
        writer=None,
        clock=SystemClock(),  # type: ignore[arg-type]
    )
    d.bind(1)
    return d


def invocation(name: str, *args: str, options: tuple[tuple[str, str], ...] = ()) -> CommandInvocation:
    return CommandInvocation(Platform.TELEGRAM, "c", name, MemberRef("7"), AT, args, options=options)


def test_positional_and_named_options_parse_alike() -> None:
    assert parse_options(GRANT, ("@ann", "PY-async"), {}) == {"member": "@ann", "course": "py-async"}
    assert parse_options(GRANT, ("py-async",), {"member": "<@!42>"}) == {"member": "42", "course": "py-async"}
    assert parse_options(NOTE, ("OFF", "for", "a", "while"), {}) == {"state": "off", "text": "for a while"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("@ann",), "needs a course"),
        (("ann!", "py"), "numeric id, an @username, or a mention"),
        (("1", "py", "extra"), "more than it expects"),
    ],
)
def test_bad_options_say_what_was_expected(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options(GRANT, args, {})


async def test_admin_commands_are_refused_without_running() -> None:
    reply = await dispatcher().dispatch(
        invocation("grant", "1", "py"), is_admin=False, actions=FakeActions(Platform.TELEGRAM)
    )
    assert "only for the community's admins" in reply.text.plain() and reply.private


async def test_usage_errors_show_the_usage_line() -> None:
    reply = await dispatcher().dispatch(
        invocation("note", "maybe"), is_admin=False, actions=FakeActions(Platform.TELEGRAM)
    )
    assert "state must be on or off, not 'maybe'" in reply.text.plain()
    assert "Usage: /note [on|off] [text]" in reply.text.plain()


async def test_a_failing_handler_is_logged_and_answered_politely(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    reply = await dispatcher().dispatch(invocation("broken"), is_admin=True, actions=FakeActions(Platform.TELEGRAM))
    assert "failed on our side" in reply.text.plain()
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


async def test_unknown_commands_point_to_help() -> None:
    reply = await dispatcher().dispatch(invocation("nope"), is_admin=True, actions=FakeActions(Platform.TELEGRAM))
    assert "/help" in reply.text.plain()


def test_help_text_is_the_docstring_first_line() -> None:
    assert GRANT.help == "Say the options back"
    assert GRANT.usage() == "/grant <member> <course>"


REFUND = CommandSpec(
    "refund",
    echo,
    (
        OptionSpec("member", "who", "member", required=False),
        OptionSpec("course", "what", "course", required=False),
        OptionSpec("charge", "a charge id", required=False, keyword=True),
    ),
    admin=True,
)


def test_keyword_options_are_typed_by_name_and_never_filled_positionally() -> None:
    assert parse_options(REFUND, ("charge", "stx-1"), {}) == {"charge": "stx-1"}
    assert parse_options(REFUND, ("CHARGE", "stx-1", "42"), {}) == {"charge": "stx-1", "member": "42"}
    assert parse_options(REFUND, ("42", "py-async"), {}) == {"member": "42", "course": "py-async"}
    assert parse_options(REFUND, (), {"charge": "stx-2"}) == {"charge": "stx-2"}  # Discord: a named option
    with pytest.raises(UsageError, match="charge needs a value"):
        parse_options(REFUND, ("charge",), {})
    with pytest.raises(UsageError, match="more than it expects"):
        parse_options(REFUND, ("42", "py-async", "stx-3"), {})
    assert REFUND.usage() == "/refund [member] [course] [charge …]"
