"""Daily access reconciliation: everyone who owns a course has its role or chat, nobody else keeps it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from analytics.formatting import plural
from bot.config import CourseSettings, Settings
from bot.core.ports import AccessReconciler
from storage.ledger import course_access

log = logging.getLogger(__name__)

NEEDS_ADMIN = "needs an admin: "
PROBLEM_SEPARATOR = " | "


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What the reconciliation fixed and what an admin must fix (shown in the digest)."""

    checked: int
    fixed: tuple[str, ...]
    problems: tuple[str, ...]

    def summary(self) -> str:
        """One line for the job log."""
        need = plural(len(self.problems), "needs", "need", with_count=False)
        return (
            f"checked {plural(self.checked, 'access', 'accesses')}, fixed {len(self.fixed)}, "
            f"{len(self.problems)} {need} an admin"
        )

    def detail(self) -> str:
        """The job log entry: the summary, what was fixed, and (parsed back by the digest) what needs an admin."""
        lines = [self.summary()]
        if self.fixed:
            lines.append("fixed: " + PROBLEM_SEPARATOR.join(self.fixed))
        if self.problems:
            lines.append(NEEDS_ADMIN + PROBLEM_SEPARATOR.join(self.problems))
        return "\n".join(lines)


def _wired(course: CourseSettings, platform: str) -> bool:
    if platform == "telegram":
        return course.telegram_chat_id is not None
    if platform == "discord":
        return course.discord_role_id is not None
    return False


async def reconcile_access(
    engine: Engine,
    settings: Settings,
    community_id: int,
    adapters: Sequence[AccessReconciler],
    *,
    now: datetime | None = None,
) -> ReconcileReport:
    """Make course access match purchases on every platform that can control it.

    Owners (a live purchase) must have access; members whose purchases were all refunded or ended (an expired
    Discord entitlement, which also ends the renewal purchases of its subscription: see
    ``bot.core.reported_subscriptions``; a Discord subscription whose entitlement is open keeps the role), and
    (where the platform can list them) anyone else holding the access, must not. Test purchases (Discord test mode)
    count only with ``[discord] grant_test_entitlements``. One member's failure never stops the others.
    """
    at = now or datetime.now(UTC)
    checked = 0
    fixed: list[str] = []
    problems: list[str] = []
    for adapter in adapters:
        ledger = await asyncio.to_thread(
            course_access,
            engine,
            community_id,
            adapter.name,
            now=at,
            include_test=adapter.name == "discord" and settings.discord.grant_test_entitlements,
        )
        for course in settings.courses:
            if not _wired(course, adapter.name):
                continue
            access = ledger.get(course.id)
            owners = access.owners if access else frozenset()
            refunded = access.refunded if access else frozenset()
            holders = await adapter.access_holders(course)
            wanted: dict[str, bool] = dict.fromkeys(refunded, False)
            if holders is not None:
                wanted.update(dict.fromkeys(holders - owners, False))
            wanted.update(dict.fromkeys(owners, True))
            for user_id, should_have in sorted(wanted.items()):
                if holders is not None and (user_id in holders) == should_have:
                    checked += 1
                    continue  # already right, and the platform told us so without asking per member
                checked += 1
                try:
                    fix = await adapter.ensure_access(user_id, course, should_have=should_have)
                except Exception as exc:  # reported, not raised: the next member still gets checked
                    log.exception("access check of %s user %s for %s failed", adapter.name, user_id, course.id)
                    problems.append(f"{adapter.name} user {user_id}, {course.title}: check failed ({exc})")
                    continue
                if fix.changed:
                    verb = "gave" if should_have else "removed"
                    fixed.append(
                        f"{verb} {course.title} access {'to' if should_have else 'from'} {adapter.name} user {user_id}"
                    )
                if fix.problem:
                    problems.append(f"{adapter.name} user {user_id}, {course.title}: {fix.problem}")
    return ReconcileReport(checked, tuple(fixed), tuple(problems))


def access_problems(detail: str | None) -> list[str]:
    """The problems the last reconciliation recorded (its job detail), for the digest."""
    if not detail:
        return []
    for line in detail.splitlines():
        if line.startswith(NEEDS_ADMIN):
            return [p.strip() for p in line.removeprefix(NEEDS_ADMIN).split(PROBLEM_SEPARATOR) if p.strip()]
    return []
