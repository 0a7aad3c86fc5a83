"""The console adapter: talk to the bot in a terminal, as any member, with no chat platform at all.

Lines typed at the terminal become the same events a Telegram or Discord adapter produces (messages, reactions,
joins, commands) and go through the same writer and dispatcher, so the answers are the real ones. What only a
platform can do is simulated and says so: payments (``/buy`` then ``:pay``), giving and taking course access,
refunds. Digests and nudges the scheduler sends to the console are printed under a header.

Input syntax (also shown by ``:help``):

* ``@alice hello everyone``: alice posts in #general (she becomes the current member);
* ``hello``: the current member posts;
* ``/stats``, ``@owner /report``: run a command as the current (or named) member;
* ``:help``, ``:who``, ``:as NAME``, ``:react EMOJI``, ``:join NAME``, ``:leave NAME``, ``:pay``, ``:digest``,
  ``:nudges``, ``:quit``: console meta commands;
* a number: run that choice (a button) of the last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.engine import make_url

from analytics.formatting import plural
from analytics.safe_text import clean_text
from analytics.weeks import week_label
from bot.console.shop import SIMULATED, ConsoleShop
from bot.core.markup import render_plain, rich
from bot.core.ports import AccessResult, AdapterDeps, DeliveryError
from bot.core.replies import Attachment, Button, OutgoingMessage, Reply
from bot.scheduler import Scheduler, due_digest_week
from storage.communities import find_community
from storage.digests import STALE_CLAIM_AFTER, DigestRecord, latest_sent_digest
from storage.events import (
    ChannelRef,
    CommandInvocation,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    ReactionEvent,
    text_facts,
)

if TYPE_CHECKING:
    from bot.config import CourseSettings, Settings

log = logging.getLogger(__name__)

OWNER = "owner"
"""The built-in identity that is always an admin, so ``@owner /report`` works without any option."""
FIRST_MEMBER = "you"
CHANNEL = ChannelRef("general", "general")
FILES_DIR_NAME = "console-files"
BOT = "bot › "
INDENT = " " * len(BOT)
PRIVATE_MARK = "  (only you see this)"
HINT = "? Not something I understand. Try `@alice hello`, `/stats`, `@owner /report` or `:help`."

_NAME = re.compile(r"[a-z0-9_.-]{1,32}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def console_files_dir(settings: Settings) -> Path:
    """Where attachments are written: ``console-files/`` next to a SQLite database, else in the working folder."""
    url = make_url(settings.storage.url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        return Path(database).resolve().parent / FILES_DIR_NAME
    return Path(FILES_DIR_NAME).resolve()


def member_name(value: str) -> str | None:
    """A console member name (``@Alice`` → ``alice``), or None when it is not one."""
    name = value.removeprefix("@").strip().lower()
    return name if _NAME.fullmatch(name) else None


class OutputClosedError(Exception):
    """What the console prints to is gone (a closed pipe or terminal): the session ends."""


@dataclass(frozen=True, slots=True)
class _Choice:
    """A button shown as a numbered choice: who may press it and what it runs."""

    member: str
    command: str


@dataclass(frozen=True, slots=True)
class _Posted:
    """The last message posted, for ``:react``."""

    message_id: str
    author: str


def _help_text(admins: Sequence[str]) -> str:
    extra = ", ".join(f"@{a}" for a in admins if a != OWNER)
    more = f"so are {extra} (--admin)" if extra else "add more with --admin NAME"
    admin_rule = f"@{OWNER} is always an admin; {more}"
    return "\n".join(
        [
            "Talk to the bot as any member of the community:",
            "  @alice hello everyone   alice posts in #general and becomes the current member",
            "  hello                   the current member posts",
            "  /stats                  run a command as the current member (/help lists them all)",
            "  @owner /report          run a command as someone else",
            "  1, 2, …                 pick a numbered choice (a button) from the last answer",
            "Console commands:",
            "  :who                    who you are now, and who the admins are",
            "  :as NAME                become NAME",
            "  :react EMOJI            react to the last message",
            "  :join NAME              NAME joins the community (:leave NAME: leaves it)",
            "  :pay                    pay your open invoice (after /buy; simulated, no money moves)",
            "  :digest                 run the weekly digest job now and show what the owner receives",
            "                          (each week's is sent once: again, it shows the last one sent)",
            "  :nudges                 run the nudge job now and show the nudges it sends",
            "  :quit                   leave (or end the input); everything you typed is stored",
            f"Admins: {admin_rule}. Admin commands (/report, /revenue, /refund …) are refused to everyone else.",
        ]
    )


class ConsoleAdapter:
    """An interactive terminal as a chat platform: one channel, #general, and members named by the user."""

    name = "console"
    platform = Platform.CONSOLE

    def __init__(
        self,
        deps: AdapterDeps,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        admins: Sequence[str] = (),
        files_dir: Path | None = None,
        interactive: bool | None = None,
        time_note: str | None = None,
    ) -> None:
        """Create the adapter (nothing is read until ``start``).

        Args:
            deps: The wired parts.
            stdin: Where lines are read (default ``sys.stdin``).
            stdout: Where everything is printed (default ``sys.stdout``).
            admins: Member names allowed to run admin commands, besides the built-in ``owner``.
            files_dir: Where attachments (charts, data exports) are written; default ``console-files/`` next to
                the database.
            interactive: Show a prompt and wait for typing (True) or echo each line read, so a piped session reads
                like a transcript (False); default: whether ``stdin`` is a terminal.
            time_note: Said after the current time in the banner (e.g. that it is a demo's simulated time).
        """
        self.deps = deps
        self.settings = deps.settings
        self.stdin = stdin if stdin is not None else sys.stdin
        self.out = stdout if stdout is not None else sys.stdout
        self.admins = (OWNER, *sorted({n for a in admins if (n := member_name(a)) and n != OWNER}))
        self.files_dir = files_dir or console_files_dir(deps.settings)
        self.interactive = self.stdin.isatty() if interactive is None else interactive
        self.time_note = time_note
        self.current = FIRST_MEMBER
        self.closed = asyncio.Event()
        self._scheduler: Scheduler | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._shop = ConsoleShop(deps, self.platform, self)
        self._choices: list[_Choice] = []
        self._last: _Posted | None = None
        self._job: str | None = None
        self._delivered = 0

    # --- wiring and lifecycle ---------------------------------------------------------------------------------

    def attach_scheduler(self, scheduler: Scheduler) -> None:
        """Let ``:digest`` and ``:nudges`` run the app's real jobs (the scheduler is built after the adapters)."""
        self._scheduler = scheduler

    def is_admin(self, member: str) -> bool:
        """``owner`` and the ``--admin`` names are admins; everyone else is a member."""
        return member in self.admins

    async def start(self) -> None:
        """Print the banner and start reading lines (returns at once; ``closed`` is set at EOF or ``:quit``)."""
        self._print_banner()
        loop = asyncio.get_running_loop()
        # A daemon thread rather than the loop's executor: a read blocked on a terminal must never keep the
        # process from exiting (the default executor is joined at shutdown).
        threading.Thread(target=self._read_lines, args=(loop,), name="console-stdin", daemon=True).start()
        self._task = asyncio.create_task(self._serve(), name="console")

    def _read_lines(self, loop: asyncio.AbstractEventLoop) -> None:
        # RuntimeError: the loop is closed because the session ended (:quit) while lines were still coming in.
        with contextlib.suppress(RuntimeError):
            try:
                for line in iter(self.stdin.readline, ""):
                    loop.call_soon_threadsafe(self._queue.put_nowait, line)
            except (OSError, ValueError):  # the stream was closed under us: same as the end of input
                pass
            loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def _serve(self) -> None:
        try:
            self._prompt()
            while (line := await self._queue.get()) is not None:
                if not self.interactive:
                    self._write(f"{self.current}> {line.rstrip()}")
                try:
                    if not await self.handle(line):
                        break
                except OutputClosedError:
                    raise
                except Exception as exc:  # one bad line must not end the session
                    log.exception("console input %r failed", line.strip())
                    self._write(f"! that failed: {exc}")
                self._prompt()
            else:
                if self.interactive:
                    self._write("")
        except OutputClosedError as exc:  # e.g. `cohortbot console | head`: nobody reads any more, so stop
            log.info("the console's output is closed (%s); stopping", exc.__cause__)
        finally:
            self.closed.set()

    async def stop(self) -> None:
        """Finish the line being handled, then stop reading."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                log.warning("the console was still busy after 30 s; stopping it anyway")
        self.closed.set()

    async def wait_closed(self) -> None:
        """Return at the end of the input or after ``:quit``."""
        await self.closed.wait()

    # --- input ------------------------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one line of input. Returns False when the session should end (``:quit``)."""
        text = line.strip()
        if not text:
            return True
        if text.startswith(":"):
            return await self._meta(text)
        if text.isdigit():
            await self._choose(int(text))
            return True
        if text.startswith("@"):
            head, _, text = text.partition(" ")
            name = member_name(head)
            if name is None:
                self._write(f"? {head!r} is not a member name: use letters, digits, '.', '_' or '-' (e.g. @alice).")
                return True
            self.current = name
            text = text.strip()
            if not text:
                self._write(f"· you are now @{name} ({self._role(name)})")
                return True
            if text.startswith(":"):  # `@bob :react 🎉`: a console command as bob
                return await self._meta(text)
        if text.startswith("/"):
            await self._command(self.current, text)
        else:
            await self._post(self.current, text)
        return True

    async def _meta(self, text: str) -> bool:
        word, _, rest = text[1:].partition(" ")
        word, rest = word.lower(), rest.strip()
        if word in ("quit", "exit", "q"):
            return False
        if word == "help":
            self._write(_help_text(self.admins))
        elif word == "who":
            self._write(f"· you are @{self.current} ({self._role(self.current)}); admins: {self._admin_list()}")
        elif word == "as":
            name = member_name(rest)
            if name is None:
                self._write("? Say who: `:as alice`.")
            else:
                self.current = name
                self._write(f"· you are now @{name} ({self._role(name)})")
        elif word == "react":
            await self._react(self.current, rest)
        elif word in ("join", "leave"):
            await self._membership(word, rest)
        elif word == "pay":
            receipt = await self._shop.pay(self.current, self._write)
            if receipt is not None:
                self._show(receipt, self.current)
        elif word == "digest":
            await self._run_digest()
        elif word == "nudges":
            await self._run_nudges()
        else:
            self._write(HINT)
        return True

    def _role(self, member: str) -> str:
        return "admin" if self.is_admin(member) else "member"

    def _admin_list(self) -> str:
        return ", ".join(f"@{a}" for a in self.admins)

    def _ref(self, member: str) -> MemberRef:
        return MemberRef(member, member)

    async def _post(self, member: str, text: str) -> None:
        facts = text_facts(text)
        keep = self.settings.storage.store_text
        event = MessageEvent(
            platform=self.platform,
            community=self.settings.community.name,
            # Unique across sessions: the writer drops a message id it has stored before as a duplicate.
            message_id=uuid.uuid4().hex[:16],
            channel=CHANNEL,
            author=self._ref(member),
            occurred_at=self.deps.clock.now(),
            length=facts.length,
            has_code=facts.has_code,
            has_link=facts.has_link,
            text=text if keep else None,
        )
        await self.deps.writer.put(event)
        self._last = _Posted(event.message_id, member)
        kept = "text kept: [storage] store_text is on" if keep else "metadata only, the text is not kept"
        self._write(f"  · stored: @{member} in #{CHANNEL.name}, {plural(facts.length, 'character')} ({kept})")

    async def _react(self, member: str, emoji: str) -> None:
        if not emoji:
            self._write("? Say which emoji: `:react 👍`.")
            return
        if self._last is None:
            self._write("? Nothing to react to yet: post a message first (`@alice hello`).")
            return
        event = ReactionEvent(
            platform=self.platform,
            community=self.settings.community.name,
            channel=CHANNEL,
            message_id=self._last.message_id,
            member=self._ref(member),
            emoji=emoji.split()[0],
            occurred_at=self.deps.clock.now(),
            message_author_id=self._last.author,
        )
        await self.deps.writer.put(event)
        self._write(f"  · stored: @{member} reacted {event.emoji} to the last message (by @{self._last.author})")

    async def _membership(self, word: str, rest: str) -> None:
        name = member_name(rest)
        if name is None:
            self._write(f"? Say who: `:{word} bob`.")
            return
        args = (self.platform, self.settings.community.name, self._ref(name), self.deps.clock.now())
        if word == "join":
            await self.deps.writer.put(MemberJoined(*args))
            self._write(f"  · stored: @{name} joined the community")
        else:
            await self.deps.writer.put(MemberLeft(*args))
            self._write(f"  · stored: @{name} left the community")

    async def _choose(self, number: int) -> None:
        if not 1 <= number <= len(self._choices):
            if self._choices:
                self._write(f"? Pick a choice from 1 to {len(self._choices)}, or type a command.")
            else:
                self._write(HINT)
            return
        choice = self._choices[number - 1]
        self.current = choice.member
        self._write(f"· @{choice.member} {choice.command}")
        await self._command(choice.member, choice.command)

    # --- commands ---------------------------------------------------------------------------------------------

    async def _command(self, member: str, text: str) -> None:
        parts = text[1:].split()
        name = parts[0].lower().partition("@")[0] if parts else ""
        if not _COMMAND.fullmatch(name):
            self._write(f"? {text.split()[0]!r} is not a command. /help lists them; :help explains the console.")
            return
        args = tuple(parts[1:])
        # The answer must count what was typed just before (the writer batches in the background).
        await self.deps.writer.flush()
        if name == "buy" and (invoice := await self._shop.open_invoice(member, args)) is not None:
            self._show(invoice, member)
            return
        invocation = CommandInvocation(
            platform=self.platform,
            community=self.settings.community.name,
            name=name,
            invoker=self._ref(member),
            occurred_at=self.deps.clock.now(),
            args=args,
            channel=CHANNEL,
        )
        reply = await self.deps.dispatcher.dispatch(invocation, is_admin=self.is_admin(member), actions=self)
        self._show(reply, member)

    # --- jobs -------------------------------------------------------------------------------------------------

    async def _run_digest(self) -> None:
        if self._scheduler is None:
            self._write("? The scheduler is not connected to this console.")
            return
        self._write("· running the weekly digest job now …")
        await self.deps.writer.flush()  # the job reads the database: what was typed before must be in it
        self._delivered = 0
        self._job = "digest"
        try:
            result = await self._scheduler.run("digest")
        finally:
            self._job = None
        self._write(f"· digest job: {result.outcome}: {result.detail}")
        if result.outcome == "skipped" and not self._delivered:
            await self._show_sent_digest()

    async def _show_sent_digest(self) -> None:
        """Show the last digest sent, exactly as the owner received it, when the job found the week already claimed.

        It is read from the database (the text stored when it was sent), so it survives a restart and is never a
        recomputation: data that arrived since would make it differ from what the owner received.
        """
        due = week_label(due_digest_week(self.deps.clock.now(), self.settings))
        sent = await asyncio.to_thread(self._latest_sent_digest)
        if sent is None or sent.sent_at is None:
            stale = int(STALE_CLAIM_AFTER.total_seconds() // 60)
            self._write(
                f"· no digest has been sent yet: the digest of {due} is claimed by a run that is still sending it "
                "(a claim left by a run that stopped is taken over after "
                f"{plural(stale, 'minute')}: type :digest again then); "
                "`@owner /digest` previews the current week"
            )
            return
        local = sent.sent_at.astimezone(self.settings.community.tz)
        when = f"sent {local:%a} {local.day} {local:%b %Y %H:%M} ({self.settings.community.timezone})"
        about = f"the digest of {sent.week}, {when}{', late' if sent.late else ''}"
        if sent.week != due:
            self._write(f"· the digest of {due} is claimed by a run that has not finished sending it")
        if sent.owner_text is None:
            self._write(
                f"· {about}: its text was not stored (sent before cohortbot kept it, or to no owner), "
                "so it is not shown again (`@owner /digest` previews the current week)"
            )
            return
        self._write(f"· each week's digest is sent once; {about}, as the owner received it:")
        self._deliver_header("── digest for the owner (already sent) ──")
        self._show(Reply(rich(*sent.owner_text.split("\n"))), OWNER, private_mark=False)

    def _latest_sent_digest(self) -> DigestRecord | None:
        with self.deps.engine.connect() as conn:
            community = find_community(conn, self.settings.community.name)
        return None if community is None else latest_sent_digest(self.deps.engine, community.id)

    async def _run_nudges(self) -> None:
        if self._scheduler is None:
            self._write("? The scheduler is not connected to this console.")
            return
        if not self.settings.nudges.enabled:
            self._write("· [nudges] enabled is false in this config: running the job anyway, as you asked")
        self._write("· running the nudge job now …")
        await self.deps.writer.flush()
        self._delivered = 0
        self._job = "nudges"
        try:
            result = await self._scheduler.run("nudges")
        finally:
            self._job = None
        self._write(f"· nudge job: {result.outcome}: {result.detail}")
        if result.outcome == "ok" and not self._delivered:
            days = self.settings.nudges.inactive_after_days
            self._write(
                f"· nobody was nudged: nudges go to console members silent for {days}+ days "
                "([nudges] inactive_after_days) who have not opted out or been nudged recently"
            )

    # --- output -----------------------------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> None:
        """Print a message the bot starts (a digest for the owner, a nudge to a member) under a header.

        Raises:
            DeliveryError: The message is for another platform.
        """
        if message.platform != self.name:
            raise DeliveryError(f"the console cannot deliver to {message.platform}")
        target = message.target
        if target == OWNER and self._job == "digest":
            header = "── digest for the owner ──"
        elif self._job == "nudges":
            header = f"── nudge to @{target} ──"
        else:
            header = f"── message to @{target} ──"
        self._delivered += 1
        self._deliver_header(header)
        self._show(message.reply, target, private_mark=False)

    def _deliver_header(self, header: str) -> None:
        self._write("")
        self._write(header)

    def _show(self, reply: Reply, member: str, *, private_mark: bool = True) -> None:
        lines = render_plain(reply.text).split("\n")
        first = BOT + lines[0] + (PRIVATE_MARK if reply.private and private_mark else "")
        self._write("\n".join([first, *(INDENT + line if line else "" for line in lines[1:])]))
        if reply.invoice is not None and self._shop.hold(member, reply.invoice):
            self._write(f"{INDENT}*** {SIMULATED} *** Type :pay to pay it (simulated).")
        for attachment in reply.attachments:
            self._write(f"{INDENT}file: {self._save(attachment)}")
        self._show_buttons(reply.buttons, member)

    def _show_buttons(self, buttons: Sequence[Button], member: str) -> None:
        if not buttons:
            return
        self._choices = []
        as_who = "" if member == self.current else f"@{member} "
        self._write(f"{INDENT}choices (type the number, or the command):")
        for button in buttons:
            if button.kind == "command":
                self._choices.append(_Choice(member, button.value))
                warn = " (cannot be undone)" if button.danger else ""
                self._write(f"{INDENT}[{len(self._choices)}] {button.label}{warn}: {as_who}{button.value}")
            elif button.kind == "url":
                self._write(f"{INDENT}[link] {button.label}: {button.value}")
            else:
                self._write(f"{INDENT}[Discord] {button.label}: a Discord shop purchase, not possible in the console")

    def _save(self, attachment: Attachment) -> Path:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        # The name comes from the core, but a file name must never climb out of the folder.
        path = self.files_dir / Path(attachment.filename).name
        path.write_bytes(attachment.data)
        return path

    def _print_banner(self) -> None:
        url = make_url(self.settings.storage.url).render_as_string(hide_password=True)
        now = self.deps.clock.now().astimezone(self.settings.community.tz)
        privacy = (
            "message text is stored ([storage] store_text is on)"
            if self.settings.storage.store_text
            else "messages are stored as metadata only (length, code, links), never their text"
        )
        self._write(
            "\n".join(
                [
                    f"cohortbot console · {self.settings.community.name}",
                    f"database: {url}",
                    f"privacy: {privacy}",
                    f"now: {now:%a} {now.day} {now:%b %Y %H:%M} ({self.settings.community.timezone})"
                    + (f", {self.time_note}" if self.time_note else ""),
                    f"You are @{self.current}. Admins: {self._admin_list()}. Payments here are simulated.",
                    "Type `@alice hello`, `/stats`, `@owner /report`; :help for everything, :quit to leave.",
                ]
            )
        )

    def _prompt(self) -> None:
        if self.interactive:
            self._write(f"{self.current}> ", end="")

    def _write(self, text: str, *, end: str = "\n") -> None:
        try:
            # Replies quote names imported from other platforms; the terminal must not run their escapes.
            self.out.write(clean_text(text) + end)
            self.out.flush()
        except OSError as exc:
            raise OutputClosedError("the console's output is closed") from exc

    # --- platform actions (simulated) -------------------------------------------------------------------------

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Nothing to open in a terminal: say that access was given, as a simulation."""
        return AccessResult(ok=True, detail=f"(simulated) access to {course.title} given")

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Nothing to close in a terminal: say that access was removed, as a simulation."""
        return AccessResult(ok=True, detail=f"(simulated) access to {course.title} removed")

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Simulated payments are returned by saying so: no money moved in the first place."""
        self._write(f"  · {SIMULATED}: payment {charge_id} returned to @{member.user_id}")
