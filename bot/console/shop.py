"""The console's simulated checkout: ``/buy COURSE`` opens an invoice, ``:pay`` pays it, and no money moves.

The decisions are the core's (:mod:`bot.core.sales`): what a course costs, whether the member already owns it,
whether pretend payments may be recorded in this database, and recording the sale and giving access. What is the
console's own is the labelling: every invoice, payment and receipt says it is simulated, and the purchase is stored
with ``PurchaseSource.SIMULATED`` so reports can tell it from real revenue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from analytics.formatting import fmt_money
from bot.core.markup import bold, rich
from bot.core.replies import Invoice, Reply
from bot.core.sales import (
    STARS,
    course_charge,
    find_course,
    owns_course,
    record_sale,
    simulated_sales_allowed,
)
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource

if TYPE_CHECKING:
    from bot.config import CourseSettings
    from bot.core.ports import AdapterDeps, PlatformActions

SIMULATED = "SIMULATED PAYMENT — no money moves"
PAYMENTS_OFF = (
    "? Simulated payments are off here: this config runs a real Telegram or Discord community, and a "
    "pretend sale would count as revenue. Try payments on the demo: cohortbot demo, then cohortbot console."
)


@dataclass(frozen=True, slots=True)
class SimulatedInvoice:
    """A simulated invoice waiting for ``:pay``."""

    course: CourseSettings
    amount: int
    currency: str

    @property
    def price(self) -> str:
        """The amount as members read it (``500 Stars``, ``49.00 EUR``)."""
        major = Decimal(self.amount) if self.currency == STARS else Decimal(self.amount) / 100
        return fmt_money(major, self.currency)


class ConsoleShop:
    """The open invoices of the console's members, and paying them (simulated)."""

    def __init__(self, deps: AdapterDeps, platform: Platform, actions: PlatformActions) -> None:
        """Create the shop.

        Args:
            deps: The wired parts (settings, writer, dispatcher, clock).
            platform: The console's platform (members are stored under it).
            actions: What "gives access" after a sale (the console adapter, which simulates it).
        """
        self.deps = deps
        self.platform = platform
        self.actions = actions
        self._invoices: dict[str, SimulatedInvoice] = {}

    async def open_invoice(self, member: str, args: tuple[str, ...]) -> Reply | None:
        """The simulated invoice for ``/buy COURSE``.

        Returns:
            The invoice to show; None leaves the answer to the core's ``/buy`` (unknown course, already owned, no
            price).
        """
        course = find_course(self.deps.settings, args[0].lower()) if len(args) == 1 else None
        charge = course_charge(course) if course is not None else None
        if course is None or charge is None:
            return None
        if await owns_course(self.deps.dispatcher, platform=self.platform.value, user_id=member, course_id=course.id):
            return None
        invoice = self._invoices[member] = SimulatedInvoice(course, *charge)
        text = rich(
            ["Invoice for ", bold(course.title), f": {invoice.price}"],
            f"*** {SIMULATED} ***",
            "In the console nothing is charged: the payment is simulated and recorded as such.",
            "Type :pay to pay it (simulated), or just carry on to leave it unpaid.",
        )
        return Reply(text, private=True)

    def hold(self, member: str, invoice: Invoice) -> bool:
        """Keep an invoice the core made (only Telegram gets Stars invoices; here it is simulated all the same).

        Returns:
            False when its course is no longer configured (nothing to pay).
        """
        course = find_course(self.deps.settings, invoice.course_id)
        if course is None:
            return False
        self._invoices[member] = SimulatedInvoice(course, invoice.amount, invoice.currency)
        return True

    async def pay(self, member: str, say: Callable[[str], None]) -> Reply | None:
        """Pay the member's open invoice (simulated): record the sale through the core and give access.

        Args:
            member: The paying console member.
            say: Prints a console line (why nothing was paid, the payment as it happens).

        Returns:
            The receipt (or "you already own it") to show the member; None when nothing was paid.
        """
        invoice = self._invoices.pop(member, None)
        if invoice is None:
            say(f"? @{member} has no open invoice. Send /buy <course> first (/courses lists them).")
            return None
        if not simulated_sales_allowed(self.deps.settings):
            say(PAYMENTS_OFF)
            return None
        await self.deps.writer.flush()
        course = invoice.course
        if await owns_course(self.deps.dispatcher, platform=self.platform.value, user_id=member, course_id=course.id):
            return Reply(rich(["You already own ", bold(course.title), "; nothing was charged."]))
        event = PurchaseEvent(
            platform=self.platform,
            community=self.deps.settings.community.name,
            charge_id=f"console-sim-{uuid.uuid4().hex[:16]}",
            member=MemberRef(member, member),
            course_id=course.id,
            amount=invoice.amount,
            currency=invoice.currency,
            occurred_at=self.deps.clock.now(),
            source=PurchaseSource.SIMULATED,
        )
        say(f"  · {SIMULATED}: @{member} pays {invoice.price} for {course.title}")
        outcome = await record_sale(self.deps.dispatcher, event, self.actions)
        note = rich(f"Simulated payment of {invoice.price}: no money moved. Reference: {event.charge_id}")
        return Reply(outcome.reply.text + note, private=True, buttons=outcome.reply.buttons)
