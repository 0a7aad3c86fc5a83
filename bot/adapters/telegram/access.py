"""Course access: invite links for buyers, removal after a refund, the daily reconciliation, the setup check.

The core decides who should have a course (:mod:`bot.core.sales`, :mod:`bot.core.reconcile`); this module does
it in Telegram, where a course is a chat: a one-time invite link to get in, a ban and unban to get out. Bots cannot
list a chat's members, so the reconciliation checks the members the ledger names, one by one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import Bot, ChatMember, ChatMemberAdministrator
from telegram.error import TelegramError

from bot.adapters.telegram.translate import ADMIN_STATUSES, is_member
from bot.config import CourseSettings
from bot.core.markup import rich
from bot.core.ports import AccessFix, AccessResult
from storage.events import MemberRef

if TYPE_CHECKING:
    from bot.adapters.telegram.adapter import TelegramAdapter

log = logging.getLogger(__name__)


class CourseAccess:
    """Grants, revokes and checks course-chat access, refunds Stars, and checks the bot's rights.

    Args:
        adapter: The adapter (its client, settings and request wrapper).
    """

    def __init__(self, adapter: TelegramAdapter) -> None:
        self.adapter = adapter

    @property
    def bot(self) -> Bot:
        """The running client."""
        bot: Bot = self.adapter.app.bot
        return bot

    async def check_health(self) -> list[str]:
        """Check the bot can do its job in every configured chat; warn in the log and tell the owners by DM.

        Returns:
            The problems found, each saying what to change.
        """
        bot = self.bot
        me = f"@{self.adapter.bot_username}"
        privacy_on = not bot.can_read_all_group_messages
        problems: list[str] = []
        for chat_id in self.adapter.config.chat_ids:
            status = await self._own_status(chat_id)
            if isinstance(status, str):
                problems.append(f"Chat {chat_id}: I can't see it ({status}). Add {me} to it and make it an admin.")
            elif status.status not in ADMIN_STATUSES:
                hidden = "reactions and joins/leaves"
                if privacy_on:
                    hidden += (
                        ", and, because privacy mode is on, ordinary messages too (alternatively turn privacy "
                        "mode off in @BotFather: /setprivacy → Disable, then remove and re-add the bot)"
                    )
                problems.append(
                    f"Chat {chat_id}: I am not an administrator, so Telegram does not send me {hidden}. "
                    f"Open the chat → Manage → Administrators → Add Admin → {me}."
                )
        for course in self.adapter.deps.settings.courses:
            if course.telegram_chat_id is None:
                continue
            status = await self._own_status(course.telegram_chat_id)
            where = f"Course chat {course.telegram_chat_id} ({course.id})"
            if isinstance(status, str):
                problems.append(f"{where}: I can't see it ({status}). Add {me} to it as an admin.")
            elif status.status == ChatMember.ADMINISTRATOR and isinstance(status, ChatMemberAdministrator):
                missing = [
                    right
                    for right, ok in (
                        ("Invite Users via Link", status.can_invite_users),
                        ("Ban Users", status.can_restrict_members),
                    )
                    if not ok
                ]
                if missing:
                    problems.append(f"{where}: give {me} the admin rights {' and '.join(missing)}.")
            elif status.status != ChatMember.OWNER:
                problems.append(
                    f"{where}: make {me} an admin with the rights Invite Users via Link and Ban Users, "
                    "so it can admit buyers and remove refunded ones."
                )
        for problem in problems:
            log.warning("Telegram setup: %s", problem)
        if problems:
            await self.adapter.tell_owners(rich("cohortbot setup check — please fix:", *(f"• {p}" for p in problems)))
        return problems

    async def _own_status(self, chat_id: int) -> ChatMember | str:
        try:
            return await self.adapter.call(None, lambda: self.bot.get_chat_member(chat_id, self.bot.id))
        except TelegramError as exc:
            return exc.message

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Create a one-time invite link to the course chat; the receipt carries it to the buyer."""
        chat_id = course.telegram_chat_id
        if chat_id is None:
            return AccessResult(ok=True, detail="")
        try:
            invite = await self.adapter.call(
                None,
                lambda: self.bot.create_chat_invite_link(
                    chat_id, member_limit=1, name=f"{course.id} {member.user_id}"[:32]
                ),
            )
        except TelegramError as exc:
            return AccessResult(
                ok=False,
                problem=(
                    f"could not create an invite link for course chat {chat_id} ({exc.message}): make "
                    f"@{self.adapter.bot_username} an admin there with the right Invite Users via Link"
                ),
            )
        return AccessResult(ok=True, detail=f"Your personal invite link (it works once): {invite.invite_link}")

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        """Remove the member from the course chat (ban, then unban so they may come back if they buy again)."""
        chat_id = course.telegram_chat_id
        if chat_id is None:
            return AccessResult(ok=True, detail="the course has no Telegram chat")
        user_id = int(member.user_id)
        try:
            await self.adapter.call(None, lambda: self.bot.ban_chat_member(chat_id, user_id))
            await self.adapter.call(None, lambda: self.bot.unban_chat_member(chat_id, user_id, only_if_banned=True))
        except TelegramError as exc:
            return AccessResult(
                ok=False,
                problem=(
                    f"could not remove user {user_id} from course chat {chat_id} ({exc.message}): make "
                    f"@{self.adapter.bot_username} an admin there with the right Ban Users"
                ),
            )
        return AccessResult(ok=True, detail=f"removed from the course chat {chat_id}")

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        """Return a Stars payment (``refundStarPayment``); Telegram then reports it as ``refunded_payment``."""
        await self.adapter.call(
            None,
            lambda: self.bot.refund_star_payment(int(member.user_id), telegram_payment_charge_id=charge_id),
        )

    async def set_subscription_cancelled(self, member: MemberRef, subscription_ref: str, *, cancelled: bool) -> None:
        """Stop or resume a Stars subscription's renewals (``editUserStarSubscription``)."""
        await self.adapter.call(
            None,
            lambda: self.bot.edit_user_star_subscription(
                int(member.user_id), telegram_payment_charge_id=subscription_ref, is_canceled=cancelled
            ),
        )

    async def access_holders(self, course: CourseSettings) -> frozenset[str] | None:
        """Bots cannot list a chat's members: always None, so buyers and refunded members are checked one by one."""
        return None

    async def ensure_access(self, user_id: str, course: CourseSettings, *, should_have: bool) -> AccessFix:
        """Remove a refunded member who is still in the course chat; list a buyer who has not joined it yet.

        A buyer outside the chat is not sent a new link every day: their one-time link from the receipt still
        works, and an admin sees them listed in the digest.
        """
        chat_id = course.telegram_chat_id
        if chat_id is None:
            return AccessFix(changed=False)
        try:
            member = await self.adapter.call(None, lambda: self.bot.get_chat_member(chat_id, int(user_id)))
        except TelegramError as exc:
            return AccessFix(
                changed=False,
                problem=(
                    f"cannot check course chat {chat_id} ({exc.message}): "
                    f"make @{self.adapter.bot_username} an admin there"
                ),
            )
        inside = is_member(member)
        if inside == should_have:
            return AccessFix(changed=False)
        if should_have:
            return AccessFix(changed=False, problem="bought it but has not joined the course chat (invite in receipt)")
        result = await self.revoke_access(MemberRef(user_id), course)
        return AccessFix(changed=result.ok, problem=result.problem)
