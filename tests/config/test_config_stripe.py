"""The [stripe] and [checkout] sections, stripe_price_id, and the Stripe secrets from the environment."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import ConfigError, load_secrets, parse_settings, validate_secrets


def errors_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data)
    return caught.value.errors


def test_defaults_are_off() -> None:
    settings = parse_settings({})
    assert not settings.stripe.enabled
    assert not settings.checkout.enabled
    assert not settings.serves_web


def test_stripe_section_and_price_id() -> None:
    settings = parse_settings(
        {
            "stripe": {"enabled": True, "success_url": "https://shop.example.org/thanks"},
            "courses": [{"id": "py-async", "title": "Async Python", "stripe_price_id": "price_1PqRstu"}],
        }
    )
    assert settings.stripe.enabled
    assert settings.stripe.success_url == "https://shop.example.org/thanks"
    assert settings.stripe.cancel_url == ""
    assert settings.courses[0].stripe_price_id == "price_1PqRstu"
    assert settings.serves_web


def test_a_product_id_is_not_a_price_id() -> None:
    assert errors_of({"courses": [{"id": "a", "title": "A", "stripe_price_id": "prod_123"}]}) == (
        '[[courses]] #1 (id "a") stripe_price_id: expected a Stripe Price id like "price_1PqR...", got "prod_123" '
        "(copy the Price id, not the Product id (prod_...))",
    )


def test_stripe_keys_in_the_file_point_at_the_environment() -> None:
    assert errors_of({"stripe": {"api_key": "sk_live_x", "webhook_secret": "whsec_x"}}) == (
        "[stripe] api_key: secrets must not be stored in the config file; remove this key and set the "
        "COHORTBOT_STRIPE_API_KEY environment variable instead",
        "[stripe] webhook_secret: secrets must not be stored in the config file; remove this key and set the "
        "COHORTBOT_STRIPE_WEBHOOK_SECRET environment variable instead",
    )


def test_stripe_enabled_needs_both_keys_and_the_signing_secret() -> None:
    settings = parse_settings({"stripe": {"enabled": True}, "checkout": {"enabled": True}})
    problems = validate_secrets(settings, load_secrets({}))
    assert [p.split(",")[0] for p in problems] == [
        "[stripe] enabled = true",
        "[stripe] enabled = true",
        "[stripe] enabled = true and [checkout] enabled = true",
    ]
    assert "COHORTBOT_STRIPE_API_KEY" in problems[0]
    assert "COHORTBOT_STRIPE_WEBHOOK_SECRET" in problems[1]
    env = {
        "COHORTBOT_STRIPE_API_KEY": "sk_test_abc",
        "COHORTBOT_STRIPE_WEBHOOK_SECRET": "whsec_abc",
        "COHORTBOT_SECRET": "s" * 32,
    }
    secrets = load_secrets(env)
    assert validate_secrets(settings, secrets) == []
    # Never shown in logs.
    assert "sk_test_abc" not in repr(secrets) and "whsec_abc" not in repr(secrets)
