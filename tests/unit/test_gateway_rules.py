from __future__ import annotations

import pytest
import stripe

from stripe_middleware.adapters.stripe.client import is_live_key, stripe_failure
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.commands.validation import CommandRejectedError, validate_command
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from stripe_middleware.shared.stripe_calls import backoff, is_retryable


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (stripe.RateLimitError("slow down", http_status=429), True),
        (stripe.APIError("boom", http_status=500), True),
        (stripe.APIError("boom", http_status=500, headers={"Stripe-Should-Retry": "false"}), False),
        (stripe.InvalidRequestError("locked", None, code="lock_timeout", http_status=409), True),
        (stripe.InvalidRequestError("bad", "amount", http_status=400), False),
        (
            stripe.InvalidRequestError(
                "bad", "amount", http_status=400, headers={"stripe-should-retry": "true"}
            ),
            True,
        ),
        (stripe.CardError("declined", None, "card_declined", http_status=402), False),
        (stripe.APIConnectionError("reset"), True),
    ],
)
def test_which_stripe_errors_are_retried(error: stripe.StripeError, retry: bool) -> None:
    assert is_retryable(stripe_failure(error)) is retry


def test_backoff_grows_with_full_jitter_and_a_cap() -> None:
    assert all(1 <= backoff(1) <= 2 for _ in range(50))
    assert max(backoff(12) for _ in range(200)) <= 300


def test_live_mode_comes_from_the_key() -> None:
    assert is_live_key("rk_live_abc") and is_live_key("sk_live_abc")
    assert not is_live_key("rk_test_abc")


def test_update_may_omit_required_keys_but_not_break_patterns() -> None:
    config, schema = load_gateway_config(), load_metadata_schema()
    _, _, params = validate_command(
        {"operation": "customers.update", "params": {"id": "cus_1", "metadata": {"campaign": " Partner "}}},
        config=config,
        schema=schema,
    )
    assert params.metadata == {"campaign": "partner"}  # normalized before it is sent
    with pytest.raises(CommandRejectedError) as rejected:
        validate_command(
            {"operation": "customers.update", "params": {"id": "cus_1", "metadata": {"erp_id": "x"}}},
            config=config,
            schema=schema,
        )
    assert rejected.value.code == "metadata_violation"
