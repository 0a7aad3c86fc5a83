"""Signed invoice payloads for Telegram Stars payments.

Telegram hands an invoice's ``payload`` back to the bot twice: in the ``pre_checkout_query`` (answer within 10 s)
and in ``successful_payment``. The payload therefore carries what the bot needs to check the sale without any
state of its own: the course, the buyer and the amount, with an HMAC-SHA256 over them so a member cannot craft an
invoice for a cheaper price or another course. Telegram allows 1 to 128 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

PAYLOAD_VERSION: Final = "c1"
MAX_PAYLOAD_BYTES: Final = 128
# 16 bytes of HMAC-SHA256 (128 bits) is far beyond guessing and keeps the payload compact.
_SIGNATURE_BYTES: Final = 16
_SEP: Final = ":"
_PART_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
# Domain separation: the same secret also keys other tokens; a payload signature can never be one of them.
_DOMAIN: Final = b"cohortbot-invoice-v1\x00"


class PaymentError(Exception):
    """An invoice payload is malformed or its signature does not match (forged or signed with another secret)."""


@dataclass(frozen=True, slots=True)
class InvoicePayload:
    """What a signed payload says: who may pay how much for which course.

    Attributes:
        course_id: The configured course id.
        user_id: The platform user id of the buyer the invoice was made for.
        amount: The price in the invoice's currency (whole Telegram Stars).
    """

    course_id: str
    user_id: str
    amount: int


def _signature(secret: str, course_id: str, user_id: str, amount: int) -> str:
    message = _DOMAIN + f"{course_id}{_SEP}{user_id}{_SEP}{amount}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_payload(secret: str, course_id: str, user_id: str, amount: int) -> str:
    """Build the signed invoice payload for a course sale.

    Args:
        secret: ``COHORTBOT_SECRET``.
        course_id: The course id (a slug).
        user_id: The buyer's platform user id.
        amount: The price (whole Stars).

    Returns:
        ``c1:<course>:<user>:<amount>:<signature>``, at most 128 bytes.

    Raises:
        PaymentError: A part contains characters a payload cannot carry, the amount is negative, the secret is
            empty, or the result would exceed Telegram's 128 bytes.
    """
    if not secret:
        raise PaymentError("no signing secret: set COHORTBOT_SECRET to sell courses in Telegram")
    for name, value in (("course id", course_id), ("user id", user_id)):
        if not _PART_RE.fullmatch(value):
            raise PaymentError(f"{name} {value!r} cannot be put in an invoice payload")
    if amount < 0:
        raise PaymentError(f"amount must not be negative, got {amount}")
    payload = _SEP.join(
        (PAYLOAD_VERSION, course_id, user_id, str(amount), _signature(secret, course_id, user_id, amount))
    )
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise PaymentError(f"invoice payload would be {len(payload.encode())} bytes; Telegram allows 128")
    return payload


def verify_payload(secret: str, payload: str) -> InvoicePayload:
    """Check a payload's signature and return what it says.

    Args:
        secret: ``COHORTBOT_SECRET``.
        payload: The ``invoice_payload`` Telegram sent back.

    Returns:
        The course, buyer and amount the invoice was signed for.

    Raises:
        PaymentError: Malformed, from another version, or the signature does not match.
    """
    if not secret:
        raise PaymentError("no signing secret: set COHORTBOT_SECRET to sell courses in Telegram")
    parts = payload.split(_SEP)
    if len(parts) != 5 or parts[0] != PAYLOAD_VERSION:
        raise PaymentError("not a cohortbot invoice payload")
    _, course_id, user_id, amount_text, signature = parts
    if not (_PART_RE.fullmatch(course_id) and _PART_RE.fullmatch(user_id) and amount_text.isdigit()):
        raise PaymentError("malformed invoice payload")
    amount = int(amount_text)
    # str(int(...)) must give back the same text, or "0500" and "500" would share one signature's meaning.
    if str(amount) != amount_text:
        raise PaymentError("malformed invoice payload")
    expected = _signature(secret, course_id, user_id, amount)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise PaymentError("invoice payload signature does not match")
    return InvoicePayload(course_id, user_id, amount)


# --- Checkout references (Stripe's client_reference_id) ---------------------------------------------------------

REFERENCE_VERSION: Final = "r1"
# Stripe allows 200 characters of letters, digits, "-" and "_" in client_reference_id; "_" separates the parts
# (course ids are slugs and user ids digits, neither has one), the signature is hex.
_REFERENCE_DOMAIN: Final = b"cohortbot-checkout-reference-v1\x00"
_REFERENCE_PART_RE: Final = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class CheckoutReference:
    """Who a card checkout was made for: a member on a platform, and the course.

    Attributes:
        platform: ``"telegram"`` or ``"discord"``.
        user_id: The member's platform user id.
        course_id: The configured course id.
    """

    platform: str
    user_id: str
    course_id: str


def _reference_signature(secret: str, platform: str, user_id: str, course_id: str) -> str:
    message = _REFERENCE_DOMAIN + f"{platform}{_SEP}{user_id}{_SEP}{course_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[: _SIGNATURE_BYTES * 2]


def sign_reference(secret: str, platform: str, user_id: str, course_id: str) -> str:
    """Build the signed reference a card checkout carries back in its webhook (binds member and course).

    Args:
        secret: ``COHORTBOT_SECRET``.
        platform: The member's platform.
        user_id: The member's platform user id.
        course_id: The course.

    Returns:
        ``r1_<platform>_<user>_<course>_<signature>``; a member cannot make one for another member or course.

    Raises:
        PaymentError: No secret, or a part a reference cannot carry.
    """
    if not secret:
        raise PaymentError("no signing secret: set COHORTBOT_SECRET to sell courses by card")
    for name, value in (("platform", platform), ("user id", user_id), ("course id", course_id)):
        if not _REFERENCE_PART_RE.fullmatch(value):
            raise PaymentError(f"{name} {value!r} cannot be put in a checkout reference")
    signature = _reference_signature(secret, platform, user_id, course_id)
    return "_".join((REFERENCE_VERSION, platform, user_id, course_id, signature))


def verify_reference(secret: str, reference: str) -> CheckoutReference:
    """Check a checkout reference's signature and return whom it names.

    Raises:
        PaymentError: Malformed, from another version, or not signed with this secret.
    """
    if not secret:
        raise PaymentError("no signing secret: set COHORTBOT_SECRET to sell courses by card")
    parts = reference.split("_")
    if len(parts) != 5 or parts[0] != REFERENCE_VERSION:
        raise PaymentError("not a cohortbot checkout reference")
    _, platform, user_id, course_id, signature = parts
    if not all(_REFERENCE_PART_RE.fullmatch(p) for p in (platform, user_id, course_id)):
        raise PaymentError("malformed checkout reference")
    expected = _reference_signature(secret, platform, user_id, course_id)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise PaymentError("checkout reference signature does not match")
    return CheckoutReference(platform, user_id, course_id)
