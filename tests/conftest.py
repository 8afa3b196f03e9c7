"""Shared fixtures. Unit tests must not open sockets; integration tests get moto-backed AWS clients."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from stripe_middleware_dev import use_repo_config

# Never let a test reach a real AWS account, whatever the developer's shell has set.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_METRICS_NAMESPACE="StripeMiddleware",
    POWERTOOLS_SERVICE_NAME="stripe-middleware-test",
)
os.environ.pop("AWS_PROFILE", None)
use_repo_config()  # the library reads config/*.yaml where the layer puts them; tests use the repository's


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.parent.name
        if layer in {"unit", "integration", "infra", "e2e"}:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(autouse=True)
def _no_sockets_in_unit_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if request.node.get_closest_marker("unit"):

        def refuse(*args: object, **kwargs: object) -> None:
            raise RuntimeError("unit tests must not open network connections")

        monkeypatch.setattr(socket.socket, "connect", refuse)
    yield
