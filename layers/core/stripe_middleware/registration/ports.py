"""What a registration needs: Stripe's webhook endpoints and the webhook secrets the ingest verifies with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from stripe_middleware.registration.models import Endpoint, EndpointSpec
from stripe_middleware.shared.errors import MiddlewareError


class RegistrationFailedError(MiddlewareError):
    """Stripe or Secrets Manager refused: the custom resource fails and the deploy with it, with this
    message (Stripe's own), and nothing is left half-registered."""


class WebhookEndpoints(Protocol):
    """Stripe's `/v1/webhook_endpoints`; every call raises `StripeCallError` with Stripe's answer."""

    def create(self, spec: EndpointSpec, *, idempotency_key: str) -> Endpoint:
        """A new endpoint, with its signing `secret` (Stripe returns it in this answer only)."""
        ...

    def retrieve(self, endpoint_id: str) -> Endpoint: ...

    def update(self, endpoint_id: str, changes: Mapping[str, Any]) -> Endpoint:
        """Change what Stripe can change in place: `url`, `enabled_events`, `description`."""
        ...

    def delete(self, endpoint_id: str) -> None: ...


class WebhookSecrets(Protocol):
    """The webhook secrets: `{"current": "whsec_...", "previous": "whsec_..."}` (adapters/secrets.py)."""

    def current(self, secret_id: str) -> str | None:
        """The `current` signing secret, None when the secret holds none yet (the deploy's placeholder);
        SecretUnavailableError when it cannot be read."""
        ...

    def write(self, secret_id: str, *, current: str, previous: str | None) -> None:
        """Replace the value (SecretUnavailableError when it cannot be written)."""
        ...
