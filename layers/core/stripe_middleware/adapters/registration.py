"""The registration context wired to AWS and Stripe: the registration key and the webhook secrets in
Secrets Manager, Stripe's webhook endpoints through the SDK (pinned to the endpoint's API version)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from stripe_middleware.adapters.stripe.client import is_stripe_key, make_stripe_client
from stripe_middleware.adapters.stripe.webhook_endpoints import SdkWebhookEndpoints
from stripe_middleware.registration.models import ResourceProperties
from stripe_middleware.registration.ports import RegistrationFailedError
from stripe_middleware.registration.register import SIGNING_SECRET_PREFIX, Registrar
from stripe_middleware.registration.settings import RegistrationSettings
from stripe_middleware.shared.errors import SecretUnavailableError

NOT_FOUND = "ResourceNotFoundException"


def _error_code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__)


def read_registration_key(client: Any, secret_id: str) -> str | None:
    """The Stripe key in `secret_id`; None while there is none (no such secret, empty, a placeholder)."""
    try:
        value = str(client.get_secret_value(SecretId=secret_id).get("SecretString") or "").strip()
    except Exception as error:
        if _error_code(error) == NOT_FOUND:
            return None
        raise SecretUnavailableError(f"cannot read secret {secret_id}: {_error_code(error)}") from error
    return value if is_stripe_key(value) else None


class SecretsManagerWebhookSecrets:
    """`registration.ports.WebhookSecrets`: the JSON `{"current", "previous"}` the ingest verifies with."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def current(self, secret_id: str) -> str | None:
        try:
            value = str(self._client.get_secret_value(SecretId=secret_id).get("SecretString") or "").strip()
        except Exception as error:
            raise SecretUnavailableError(f"cannot read secret: {_error_code(error)}") from error
        if value.startswith("{"):
            try:
                value = str(json.loads(value).get("current") or "").strip()
            except (ValueError, AttributeError):
                return None
        return value if value.startswith(SIGNING_SECRET_PREFIX) else None

    def write(self, secret_id: str, *, current: str, previous: str | None) -> None:
        document = {"current": current, **({"previous": previous} if previous else {})}
        try:
            self._client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(document))
        except Exception as error:
            raise SecretUnavailableError(f"cannot write secret: {_error_code(error)}") from error


def build_registrar(
    properties: ResourceProperties, settings: RegistrationSettings, client: Callable[[str], Any]
) -> Registrar:
    """What a request needs, read fresh each time (a deploy may follow a new key); `client(service)`
    makes boto3 clients. No key: a registrar without endpoints, which registers nothing."""
    secretsmanager = client("secretsmanager")
    try:
        key = read_registration_key(secretsmanager, properties.key_secret_id)
    except SecretUnavailableError as error:
        raise RegistrationFailedError(f"cannot read the Stripe key: {error}") from error
    endpoints = None
    if key:
        stripe = make_stripe_client(
            key,
            api_version=properties.api_version,
            api_base=settings.stripe_api_base,
            max_network_retries=0,  # register.py retries, with the shared backoff
        )
        endpoints = SdkWebhookEndpoints(stripe)
    return Registrar(endpoints=endpoints, secrets=SecretsManagerWebhookSecrets(secretsmanager))
