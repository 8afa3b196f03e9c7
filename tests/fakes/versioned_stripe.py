"""The fake Stripe of `stripe_server.py`, rendering objects by the `Stripe-Version` request header.

Stripe answers every request in the version the request names: a newer version may add a field, remove
one, rename one or change its type. Here `objects` holds each object as the pinned version renders it, and
`renderings[version]` turns that into the object as `version` renders it. A version that is neither the
pinned one nor in `renderings` is refused with Stripe's 400, as Stripe refuses an unknown version.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.shared.contract import STRIPE_API_VERSION
from tests.fakes.stripe_server import FakeStripe, _handler, serve

Rendering = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class VersionedFakeStripe(FakeStripe):
    pinned_version: str = STRIPE_API_VERSION
    renderings: dict[str, Rendering] = field(default_factory=dict)


def _versioned_handler(state: VersionedFakeStripe) -> type[Any]:
    base: type[Any] = _handler(state)

    class Handler(base):  # type: ignore[misc, valid-type]
        def _act(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
            version = self.headers.get("Stripe-Version") or state.pinned_version
            if version != state.pinned_version and version not in state.renderings:
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"Invalid Stripe API version: {version}",
                        "param": "stripe_version",
                    }
                }
            status, body = super()._act(method, path, params)
            if method == "GET" and status == 200 and version in state.renderings:
                return status, state.renderings[version](copy.deepcopy(body))
            return status, body

    return Handler


@contextmanager
def versioned_fake_stripe(renderings: dict[str, Rendering] | None = None) -> Iterator[VersionedFakeStripe]:
    state = VersionedFakeStripe(renderings=dict(renderings or {}))
    with serve(state, _versioned_handler(state)):
        yield state
