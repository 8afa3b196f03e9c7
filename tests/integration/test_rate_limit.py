from __future__ import annotations

import math
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from stripe_middleware.adapters.dynamodb.rate_limit import WINDOW_SECONDS, DynamoRateLimiter
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.shared.errors import StoreUnavailableError
from stripe_middleware_dev.tables import create_table_request


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def limiter_and_clock() -> Iterator[tuple[DynamoRateLimiter, Clock]]:
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(**create_table_request("store"))
        clock = Clock()
        yield DynamoRateLimiter(client, "store", clock=clock, sleep=clock.sleep), clock


def test_each_window_grants_its_share_of_the_per_second_limit(
    limiter_and_clock: tuple[DynamoRateLimiter, Clock],
) -> None:
    limiter, clock = limiter_and_clock
    granted = sum(limiter.try_acquire([("test", 20)]) for _ in range(10))
    assert granted == int(20 * WINDOW_SECONDS)
    clock.now += WINDOW_SECONDS
    assert limiter.try_acquire([("test", 20)])


@pytest.mark.parametrize("per_second", [1, 2, 10, 25, 33])
def test_every_second_grants_exactly_the_rate_and_no_window_more_than_its_rounded_up_share(
    limiter_and_clock: tuple[DynamoRateLimiter, Clock], per_second: int
) -> None:
    limiter, clock = limiter_and_clock
    per_window = []
    for _ in range(int(2 / WINDOW_SECONDS)):  # two seconds of windows
        per_window.append(sum(limiter.try_acquire([("test", per_second)]) for _ in range(per_second)))
        clock.now += WINDOW_SECONDS
    assert sum(per_window) == 2 * per_second
    assert max(per_window) <= math.ceil(per_second * WINDOW_SECONDS)


def test_two_limiters_share_one_limit(limiter_and_clock: tuple[DynamoRateLimiter, Clock]) -> None:
    limiter, clock = limiter_and_clock
    other = DynamoRateLimiter(limiter._client, "store", clock=clock, sleep=clock.sleep)
    results = [lim.try_acquire([("test", 20)]) for _ in range(5) for lim in (limiter, other)]
    assert sum(results) == 5


def test_every_key_must_have_room(limiter_and_clock: tuple[DynamoRateLimiter, Clock]) -> None:
    limiter, _ = limiter_and_clock
    for _ in range(2):
        assert limiter.try_acquire([("test", 100), ("test:/v1/refunds", 8)])
    assert not limiter.try_acquire([("test", 100), ("test:/v1/refunds", 8)])
    assert limiter.try_acquire([("test", 100), ("test:/v1/customers", 8)])


def test_acquire_waits_for_the_next_window_and_gives_up_at_max_wait(
    limiter_and_clock: tuple[DynamoRateLimiter, Clock],
) -> None:
    limiter, clock = limiter_and_clock
    while limiter.try_acquire([("live", 4)]):
        pass
    assert limiter.acquire([("live", 4)], max_wait=5)
    assert clock.slept and all(0 < s <= WINDOW_SECONDS * 1.2 for s in clock.slept)
    while limiter.try_acquire([("live", 4)]):
        pass
    assert not limiter.acquire([("live", 4)], max_wait=0)


def test_configured_share_of_stripe_limits() -> None:
    limits = load_gateway_config().rate_limit
    assert limits.limits(livemode=True) == (80, 20)
    assert limits.limits(livemode=False) == (20, 20)


def test_a_dynamodb_outage_is_an_unavailable_store_not_a_full_window() -> None:
    with mock_aws():
        limiter = DynamoRateLimiter(boto3.client("dynamodb"), "no-such-table")
        with pytest.raises(StoreUnavailableError):
            limiter.try_acquire([("test", 20)])
