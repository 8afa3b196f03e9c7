"""A rate limit shared by every Lambda that calls Stripe: DynamoDB counters per time window.

Each request takes one slot in the current window of every key it counts against (account-wide, and its
endpoint), with an atomic conditional `ADD`. Windows are a quarter second, so a burst can never exceed a
quarter of the per-second limit (rounded up) at a window edge (Stripe meters with a token bucket). Counters
expire by TTL.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from stripe_middleware.adapters.aws import is_conditional_check_failure
from stripe_middleware.adapters.dynamodb.table import TTL_ATTRIBUTE, rate_key, string_key
from stripe_middleware.shared.errors import StoreUnavailableError

WINDOW_SECONDS = 0.25


def slots(per_second: int, window: int) -> int:
    """The slots of one window: the per-second rate spread over the windows so that every second (and
    every run of windows) gets exactly its share; 10/s in quarter seconds is 2, 3, 2, 3, not 2, 2, 2, 2."""
    return math.floor((window + 1) * per_second * WINDOW_SECONDS) - math.floor(
        window * per_second * WINDOW_SECONDS
    )


class DynamoRateLimiter:
    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock
        self._sleep = sleep

    def try_acquire(self, limits: Sequence[tuple[str, int]]) -> bool:
        """Take a slot for each (key, requests per second) now; False when any window is full."""
        now = self._clock()
        window = math.floor(now / WINDOW_SECONDS)
        for key, per_second in limits:
            per_window = slots(per_second, window)
            if per_window == 0:  # below 4/s some windows have no slot at all
                return False
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=string_key(rate_key(key, window)),
                    UpdateExpression="ADD used :one SET #ttl = :ttl",
                    ConditionExpression="attribute_not_exists(used) OR used < :limit",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":limit": {"N": str(per_window)},
                        ":ttl": {"N": str(int(now) + 120)},
                    },
                )
            except Exception as error:
                if is_conditional_check_failure(error):
                    return False
                raise StoreUnavailableError(f"UpdateItem failed: {type(error).__name__}") from error
        return True

    def acquire(self, limits: Sequence[tuple[str, int]], *, max_wait: float = 10.0) -> bool:
        """Wait for slots (to the next window, with jitter) up to `max_wait` seconds."""
        deadline = self._clock() + max_wait
        while True:
            if self.try_acquire(limits):
                return True
            now = self._clock()
            if now >= deadline:
                return False
            next_window = (math.floor(now / WINDOW_SECONDS) + 1) * WINDOW_SECONDS
            self._sleep(next_window - now + random.uniform(0, WINDOW_SECONDS / 5))  # noqa: S311 - jitter
