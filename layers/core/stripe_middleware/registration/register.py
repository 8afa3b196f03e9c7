"""Carry a registration plan out against Stripe and the webhook secrets, never leaving it half done.

- Create: read the webhook secret's `current` first (fail before Stripe is touched), create the endpoint,
  write `{"current": <its secret>, "previous": <the old current>}`; if that write fails, delete the
  endpoint just created and fail. The old `current` stays as `previous` (when it is a signing secret), so
  an endpoint registered by hand before keeps verifying until the next roll.
- Replace: create the new endpoint and roll the secret the same way, then delete the old endpoint: both
  endpoints' deliveries verify throughout. Should the delete fail, the deploy goes on: CloudFormation
  sends a Delete for the old physical id in its clean-up, which deletes it then.
- Update / check: an endpoint deleted in the Dashboard meanwhile is registered anew.
- Delete: an endpoint already gone counts as deleted.

Every Stripe call is retried when Stripe says so (429, 5xx, network, `Stripe-Should-Retry`), with the
shared backoff; creation carries an idempotency key (CloudFormation's request id), so a retry never
creates two endpoints. Anything else fails the request with Stripe's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from stripe_middleware.registration.models import (
    NOT_REGISTERED,
    Endpoint,
    EndpointSpec,
    Registration,
    RegistrationRequest,
)
from stripe_middleware.registration.plan import Plan, Step, plan
from stripe_middleware.registration.ports import RegistrationFailedError, WebhookEndpoints, WebhookSecrets
from stripe_middleware.shared.errors import UnavailableError
from stripe_middleware.shared.stripe_calls import StripeCallError, StripeFailure, backoff, is_retryable

MAX_ATTEMPTS = 5  # per Stripe call; a deploy waits at most a minute or so on an unwell Stripe
SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
T = TypeVar("T")


@dataclass
class Registrar:
    endpoints: WebhookEndpoints | None  # None: the key secret holds no Stripe key
    secrets: WebhookSecrets
    sleep: Callable[[float], None] = time.sleep
    max_attempts: int = MAX_ATTEMPTS


def register(request: RegistrationRequest, registrar: Registrar) -> Registration:
    """Do what `request` means (see plan.py) and answer the physical id; RegistrationFailedError fails
    the custom resource with a message saying what Stripe or Secrets Manager answered."""
    decided = plan(request, has_key=registrar.endpoints is not None)
    notes = (decided.reason,) if decided.reason else ()
    if decided.step is Step.SKIP:
        return Registration(NOT_REGISTERED, decided.step, notes=notes)
    if decided.step is Step.KEEP or registrar.endpoints is None:
        return Registration(
            request.physical_resource_id or NOT_REGISTERED, decided.step, decided.endpoint_id, notes
        )
    run = _Run(request, registrar, registrar.endpoints)
    return run.carry_out(decided)


def _missing(failure: StripeFailure) -> bool:
    return failure.code == "resource_missing" or failure.http_status == 404


@dataclass
class _Run:
    request: RegistrationRequest
    registrar: Registrar
    endpoints: WebhookEndpoints

    @property
    def spec(self) -> EndpointSpec:
        return self.request.properties.spec()

    def carry_out(self, decided: Plan) -> Registration:
        step, old = decided.step, decided.endpoint_id
        notes = [decided.reason] if decided.reason else []
        if step is Step.CREATE or old is None:
            created = self.create_with_secret("create")
            return Registration(created.id, Step.CREATE, created.id, tuple(notes))
        if step is Step.DELETE:
            if not self.found(f"delete webhook endpoint {old}", lambda: self.endpoints.delete(old)):
                notes.append(f"endpoint {old} was already deleted in Stripe")
            return Registration(old, step, old, tuple(notes))
        if step is Step.REPLACE:
            return self.replace(old, notes)
        if step is Step.UPDATE:
            what = f"update webhook endpoint {old} ({', '.join(decided.changes)})"
            exists = self.found(what, lambda: self.endpoints.update(old, decided.changes))
        else:  # CHECK
            exists = self.found(f"retrieve webhook endpoint {old}", lambda: self.endpoints.retrieve(old))
        if exists:
            return Registration(old, step, old, tuple(notes))
        created = self.create_with_secret("recreate")
        notes.append(
            f"endpoint {old} no longer exists in Stripe (deleted in the Dashboard?): registered anew"
        )
        return Registration(created.id, Step.CREATE, created.id, tuple(notes))

    def replace(self, old: str, notes: list[str]) -> Registration:
        """The new endpoint and its secret first, then the old endpoint goes."""
        created = self.create_with_secret("replace")
        try:
            if not self.found(
                f"delete the replaced webhook endpoint {old}", lambda: self.endpoints.delete(old)
            ):
                notes.append(f"endpoint {old} was already deleted in Stripe")
        except RegistrationFailedError as error:  # the new endpoint works; CloudFormation's clean-up retries
            notes.append(f"{error}; CloudFormation's clean-up deletes it (or delete it in the Dashboard)")
        return Registration(created.id, Step.REPLACE, created.id, tuple(notes))

    def create_with_secret(self, purpose: str) -> Endpoint:
        """A new endpoint whose signing secret is in the webhook secret, or nothing at all."""
        spec, secret_id = self.spec, self.request.properties.webhook_secret_id
        try:
            previous = self.registrar.secrets.current(secret_id)
        except UnavailableError as error:
            raise RegistrationFailedError(f"cannot read the webhook secret {secret_id}: {error}") from error
        key = f"{self.request.request_id}/{self.request.logical_resource_id}/{purpose}"
        created = self.call(
            f"create a {spec.route} webhook endpoint for {spec.url}",
            lambda: self.endpoints.create(spec, idempotency_key=key),
        )
        try:
            if not created.secret:
                raise UnavailableError("Stripe returned no signing secret for the new endpoint")
            keep = previous if previous and previous.startswith(SIGNING_SECRET_PREFIX) else None
            self.registrar.secrets.write(
                secret_id, current=created.secret, previous=keep if keep != created.secret else None
            )
        except UnavailableError as error:
            raise RegistrationFailedError(
                f"cannot write the signing secret into {secret_id} ({error}); {self.undo(created.id)}"
            ) from error
        return created

    def undo(self, endpoint_id: str) -> str:
        """Delete an endpoint this run created; say what happened (for the failure's message)."""
        try:
            self.found(f"delete webhook endpoint {endpoint_id}", lambda: self.endpoints.delete(endpoint_id))
        except RegistrationFailedError as error:
            return f"the endpoint {endpoint_id} just created could not be deleted: {error}; delete it by hand"
        return f"the endpoint {endpoint_id} just created was deleted again"

    def found(self, what: str, action: Callable[[], object]) -> bool:
        """Run `action` on an endpoint; False when Stripe says the endpoint does not exist."""
        try:
            self.call(what, action, missing_ok=True)
        except _EndpointMissingError:
            return False
        return True

    def call(self, what: str, action: Callable[[], T], *, missing_ok: bool = False) -> T:
        attempt = 0
        while True:
            try:
                return action()
            except StripeCallError as error:
                failure = error.failure
                if missing_ok and _missing(failure):
                    raise _EndpointMissingError(what) from error
                attempt += 1
                if is_retryable(failure) and attempt < self.registrar.max_attempts:
                    self.registrar.sleep(backoff(attempt))
                    continue
                verb = "kept failing to" if is_retryable(failure) else "refused to"
                code = f"/{failure.code}" if failure.code else ""
                raise RegistrationFailedError(
                    f"Stripe {verb} {what} ({failure.http_status} {failure.type}{code}): {failure.message}"
                ) from error


class _EndpointMissingError(Exception):
    """Stripe answered that the endpoint does not exist (deleted in the Dashboard, or already)."""
