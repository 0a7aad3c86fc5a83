"""Telegram Stars payments, translated for the core: a checkout to approve, a payment or a refund to record.

What a payment buys, whether it is refused or refunded, and what the payer and the owners are told is decided in
:mod:`bot.core.sales`; this module only reads Telegram's messages and delivers the answers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import Message, PreCheckoutQuery

from bot.adapters.telegram.translate import member_ref, purchase_event, refund_event
from bot.core.sales import CHECKOUT_FAILED, check_checkout, receive_payment, receive_refund
from storage.events import PurchaseEvent

if TYPE_CHECKING:
    from bot.adapters.telegram.adapter import TelegramAdapter

log = logging.getLogger(__name__)


async def pre_checkout(adapter: TelegramAdapter, query: PreCheckoutQuery) -> None:
    """Answer a pre-checkout query (Telegram charges only when it is accepted, within 10 seconds)."""
    try:
        reason = await check_checkout(
            adapter.deps.dispatcher,
            platform=adapter.platform.value,
            user_id=str(query.from_user.id),
            payload=query.invoice_payload,
            amount=query.total_amount,
            currency=query.currency,
        )
    except Exception:
        log.exception("checking a checkout by user %s failed; refusing it", query.from_user.id)
        reason = CHECKOUT_FAILED
    await adapter.call(None, lambda: query.answer(ok=reason is None, error_message=reason))
    log.info("checkout by user %s %s", query.from_user.id, "accepted" if reason is None else f"refused: {reason}")


async def payment(adapter: TelegramAdapter, message: Message) -> None:
    """Record a ``successful_payment`` or ``refunded_payment`` message, then tell the payer (and owners) once."""
    buyer = message.from_user
    if buyer is None:
        log.error("a payment message without a sender arrived in chat %s; ignored", message.chat.id)
        return
    member = member_ref(buyer)
    community = adapter.scope.community
    dispatcher = adapter.deps.dispatcher
    if message.successful_payment is not None:
        paid = message.successful_payment

        def purchase(course_id: str) -> PurchaseEvent:
            return purchase_event(paid, buyer=buyer, course_id=course_id, occurred_at=message.date, community=community)

        notices = await receive_payment(
            dispatcher,
            adapter,
            invoice_payload=paid.invoice_payload,
            payer=member,
            charge_id=paid.telegram_payment_charge_id,
            amount=paid.total_amount,
            currency=paid.currency,
            received_at=message.date,
            purchase=purchase,
        )
        buyer_notice, owners_notice = notices.buyer, notices.owners
    else:
        refunded = message.refunded_payment
        assert refunded is not None
        event = refund_event(refunded, occurred_at=message.date, community=community)
        buyer_notice, owners_notice = await receive_refund(dispatcher, event, member, adapter), None
    if buyer_notice is not None:
        await adapter.deliver(buyer_notice, user_id=buyer.id, chat=None, command="paysupport")
    if owners_notice is not None:
        await adapter.tell_owners(owners_notice)
