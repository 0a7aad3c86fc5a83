"""Signed invoice payloads: compact, verifiable, and impossible to alter without the secret."""

from __future__ import annotations

import re

import pytest

from bot.core.payments import (
    MAX_PAYLOAD_BYTES,
    CheckoutReference,
    InvoicePayload,
    PaymentError,
    sign_payload,
    sign_reference,
    verify_payload,
    verify_reference,
)

SECRET = "s3cret-for-tests"


def test_round_trip() -> None:
    payload = sign_payload(SECRET, "py-async", "123456789", 500)
    assert verify_payload(SECRET, payload) == InvoicePayload("py-async", "123456789", 500)


def test_longest_realistic_payload_fits_telegrams_limit() -> None:
    payload = sign_payload(SECRET, "a" * 32, "9" * 20, 10**9)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert verify_payload(SECRET, payload).course_id == "a" * 32


@pytest.mark.parametrize(
    ("old", "new"),
    [(":500:", ":50:"), (":py-async:", ":rust-intro:"), (":123456789:", ":987654321:")],
)
def test_any_change_breaks_the_signature(old: str, new: str) -> None:
    payload = sign_payload(SECRET, "py-async", "123456789", 500)
    with pytest.raises(PaymentError, match="signature"):
        verify_payload(SECRET, payload.replace(old, new))


def test_another_secret_does_not_verify() -> None:
    with pytest.raises(PaymentError):
        verify_payload("other", sign_payload(SECRET, "py-async", "1", 500))


@pytest.mark.parametrize(
    "payload",
    ["", "hello", "c1:py-async:1:500", "c2:py-async:1:500:AAAA", "c1:py-async:1:0500:AAAA", "c1:py:1:-5:AAAA"],
)
def test_malformed_payloads_are_refused(payload: str) -> None:
    with pytest.raises(PaymentError):
        verify_payload(SECRET, payload)


def test_signing_refuses_what_a_payload_cannot_carry() -> None:
    with pytest.raises(PaymentError):
        sign_payload(SECRET, "py:async", "1", 5)
    with pytest.raises(PaymentError):
        sign_payload(SECRET, "py-async", "1", -5)
    with pytest.raises(PaymentError):
        sign_payload("", "py-async", "1", 5)
    with pytest.raises(PaymentError, match="128"):
        sign_payload(SECRET, "x" * 100, "1", 5)


# --- Checkout references (Stripe client_reference_id) -----------------------------------------------------------


def test_reference_round_trip_and_fits_stripe() -> None:
    reference = sign_reference(SECRET, "discord", "123456789012345678", "py-async")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,200}", reference)
    assert verify_reference(SECRET, reference) == CheckoutReference("discord", "123456789012345678", "py-async")


@pytest.mark.parametrize(
    ("old", "new"), [("123456789012345678", "123456789012345679"), ("py-async", "rust-intro"), ("discord", "telegram")]
)
def test_a_reference_cannot_be_moved_to_another_member_or_course(old: str, new: str) -> None:
    reference = sign_reference(SECRET, "discord", "123456789012345678", "py-async")
    with pytest.raises(PaymentError, match="signature"):
        verify_reference(SECRET, reference.replace(old, new))


def test_a_reference_signed_with_another_secret_or_malformed_is_refused() -> None:
    reference = sign_reference("another-secret", "telegram", "42", "py-async")
    with pytest.raises(PaymentError):
        verify_reference(SECRET, reference)
    for bad in ("", "r1_telegram_42", "x1_telegram_42_py-async_00", "r1_tele gram_42_py-async_00"):
        with pytest.raises(PaymentError):
            verify_reference(SECRET, bad)
    with pytest.raises(PaymentError):
        sign_reference("", "telegram", "42", "py-async")
