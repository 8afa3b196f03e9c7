"""Secrets Manager adapter: webhook signing secrets (cached per container) and plain secrets (API keys).

Secret value: either a bare `whsec_...` string, or JSON `{"current": "whsec_...", "previous": "whsec_..."}`
so that a secret roll on Stripe's side (both secrets sign for up to 24 h) never rejects a delivery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from stripe_middleware.shared.errors import SecretUnavailableError

DEFAULT_TTL_SECONDS = 300.0
# A signature no cached secret verifies may have been signed with a secret written since (a registration, a
# roll): the secret is read again, at most once per this many seconds, so forged requests cannot turn every
# request into a Secrets Manager call.
MIN_REFRESH_SECONDS = 30.0


def parse_signing_secrets(value: str) -> tuple[str, ...]:
    value = value.strip()
    if value.startswith("{"):
        document = json.loads(value)
        secrets = tuple(str(document[key]).strip() for key in ("current", "previous") if document.get(key))
    else:
        secrets = (value,) if value else ()
    if not secrets:
        raise SecretUnavailableError("the signing secret is empty")
    return secrets


class SecretsManagerSigningSecrets:
    """`get(secret_id)` returns the active signing secrets, fetched at most once per TTL per secret."""

    def __init__(
        self,
        client: Any,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._min_refresh = min_refresh_seconds
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}

    def get(self, secret_id: str) -> tuple[str, ...]:
        cached = self._cache.get(secret_id)
        if cached and self._clock() - cached[0] < self._ttl:
            return cached[1]
        return self._read(secret_id)

    def refreshed(self, secret_id: str) -> tuple[str, ...] | None:
        """The secrets read again when they changed since they were cached, which is at least
        MIN_REFRESH_SECONDS ago; None otherwise (nothing new to verify with)."""
        cached = self._cache.get(secret_id)
        if cached is None or self._clock() - cached[0] < self._min_refresh:
            return None
        secrets = self._read(secret_id)
        return secrets if secrets != cached[1] else None

    def _read(self, secret_id: str) -> tuple[str, ...]:
        try:
            value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
            secrets = parse_signing_secrets(value)
        except SecretUnavailableError:
            raise
        except Exception as error:  # any AWS or parse failure means "cannot verify now"
            raise SecretUnavailableError(f"cannot read signing secret: {type(error).__name__}") from error
        self._cache[secret_id] = (self._clock(), secrets)
        return secrets


def read_secret(client: Any, secret_id: str) -> str:
    """A plain secret string (e.g. a Stripe API key), read once per container by the caller's cache."""
    try:
        value = str(client.get_secret_value(SecretId=secret_id)["SecretString"]).strip()
    except Exception as error:
        raise SecretUnavailableError(f"cannot read secret: {type(error).__name__}") from error
    if not value:
        raise SecretUnavailableError("the secret is empty")
    return value
