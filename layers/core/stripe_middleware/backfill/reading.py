"""Reading Stripe's list endpoints the way backfill and catch-up both must: every call takes a slot of the
shared rate limit first (the read share), a 429 waits without using an attempt, 5xx and network errors
are retried with backoff, and anything else stops the run with Stripe's reason."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stripe_middleware.backfill.ports import BackfillFailedError, Page, StripeLister, StripeUnavailableError
from stripe_middleware.shared.stripe_calls import RateLimiter, StripeCallError, backoff, is_retryable

PAGE_SIZE = 100  # Stripe's maximum
_OBJECT_PATH = re.compile(r"^(/v1/[a-z_]+)/[^/]+$")


def endpoint(path: str) -> str:
    """The endpoint a path calls, for the rate limit's per-endpoint key: `/v1/payouts/po_1` ->
    `/v1/payouts/{id}`; list paths are their own endpoint."""
    match = _OBJECT_PATH.match(path)
    return f"{match.group(1)}/{{id}}" if match else path


MAX_ATTEMPTS = 8  # per Stripe call, for 5xx and network errors (429s do not count)


@dataclass
class StripeReader:
    lister: StripeLister
    limiter: RateLimiter
    read_limits: Callable[[str], Sequence[tuple[str, int]]]  # endpoint (see `endpoint`) -> limiter keys
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0  # Stripe answers retried (429, 5xx, network), for the metrics

    def page(
        self, path: str, params: dict[str, Any], starting_after: str | None, account: str | None
    ) -> Page:
        """One list call; `resource_missing` is raised as is (the caller knows what it means)."""
        attempt = throttled = 0
        while True:
            while not self.limiter.acquire(self.read_limits(endpoint(path))):
                pass  # the limit is busy: acquire() already waited; keep waiting, history is patient
            try:
                return self.lister.list_page(
                    path, params, starting_after=starting_after, stripe_account=account
                )
            except StripeCallError as error:
                failure = error.failure
                if failure.code == "resource_missing":
                    raise
                if failure.rate_limited:  # Stripe did nothing: wait longer each time, using no attempt
                    throttled += 1
                    self.retries += 1
                    self.sleep(backoff(min(throttled, 6)))
                    continue
                if is_retryable(failure) and attempt + 1 < MAX_ATTEMPTS:
                    attempt += 1
                    self.retries += 1
                    self.sleep(backoff(min(attempt, 6)))
                    continue
                answer = (
                    f"GET {path} ({failure.http_status} {failure.type}"
                    f"{'/' + failure.code if failure.code else ''}): {failure.message}"
                )
                if is_retryable(failure):
                    raise StripeUnavailableError(f"Stripe kept failing {answer}") from error
                raise BackfillFailedError(f"Stripe refused {answer}") from error

    def all(self, path: str, params: dict[str, Any], account: str | None) -> list[Any]:
        """Every entry of a (short) list, newest first, as Stripe sent it."""
        objects: list[Any] = []
        starting_after = None
        while True:
            page = self.page(path, {**params, "limit": PAGE_SIZE}, starting_after, account)
            objects += page.objects
            ids = [o["id"] for o in page.objects if isinstance(o, dict) and isinstance(o.get("id"), str)]
            if not page.has_more or not ids:
                return objects
            starting_after = ids[-1]
