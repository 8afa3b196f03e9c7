"""In-memory fakes of the registration ports, and custom resource requests as CloudFormation sends them.

`FakeWebhookEndpoints` keeps endpoints the way Stripe does: the signing secret only in the answer to a
creation, idempotency replays, `resource_missing` for an unknown id, `api_version` fixed at creation.
`fail` holds the answers to inject into the next calls (a `StripeFailure` each), `fail_on` into the next
calls of one method. `FakeWebhookSecrets` keeps each secret's JSON value; `fail_read` / `fail_write`
refuse like Secrets Manager.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from events import load_event, stripe_object
from stripe_middleware.registration.models import Endpoint, EndpointSpec, RegistrationRequest
from stripe_middleware.shared.errors import SecretUnavailableError
from stripe_middleware.shared.stripe_calls import StripeCallError, StripeFailure

WEBHOOK_SECRET_ID = (
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:WebhookIngestWebhookSecret9C1D-Xy12Ab"
)


def stripe_error(status: int, code: str | None = None, message: str = "", **flags: Any) -> StripeFailure:
    """A failure as adapters/stripe/client.py makes it from Stripe's answer."""
    kind = "api_error" if status >= 500 else "invalid_request_error"
    return StripeFailure(
        type=kind,
        code=code,
        message=message or f"injected {status}",
        http_status=status,
        request_id="req_fake",
        rate_limited=status == 429,
        **flags,
    )


RATE_LIMITED = stripe_error(429, "rate_limit", "Too many requests")
UNAVAILABLE = stripe_error(500, None, "An unknown error occurred")


@dataclass
class FakeWebhookEndpoints:
    """`registration.ports.WebhookEndpoints` with Stripe's semantics."""

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> object, as Stripe stores it
    calls: list[tuple[str, Any]] = field(default_factory=list)  # (method, endpoint id or spec)
    fail: list[StripeFailure] = field(default_factory=list)
    fail_on: dict[str, list[StripeFailure]] = field(default_factory=dict)  # method -> next failures
    _replays: dict[str, Endpoint] = field(default_factory=dict)

    def add(self, **fields: Any) -> str:
        """An endpoint registered before (by a deploy, or by hand in the Dashboard)."""
        obj = {**stripe_object("webhook_endpoint"), "id": f"we_{secrets.token_hex(12)}", **fields}
        self.endpoints[obj["id"]] = obj
        return str(obj["id"])

    def _call(self, method: str, subject: Any) -> None:
        self.calls.append((method, subject))
        queued = self.fail_on.get(method)
        failure = self.fail.pop(0) if self.fail else queued.pop(0) if queued else None
        if failure is not None:
            raise StripeCallError(failure)

    def _existing(self, endpoint_id: str) -> dict[str, Any]:
        if endpoint_id not in self.endpoints:
            raise StripeCallError(
                stripe_error(404, "resource_missing", f"No such webhook endpoint: '{endpoint_id}'")
            )
        return self.endpoints[endpoint_id]

    def create(self, spec: EndpointSpec, *, idempotency_key: str) -> Endpoint:
        self._call("create", spec)
        if idempotency_key in self._replays:
            return self._replays[idempotency_key]
        endpoint_id = self.add(
            url=spec.url,
            enabled_events=list(spec.enabled_events),
            api_version=spec.api_version,
            description=spec.description or None,
            status="enabled",
            connect=spec.connect,  # not part of Stripe's object; kept for the tests to look at
        )
        created = Endpoint.from_stripe(
            {**self.endpoints[endpoint_id], "secret": f"whsec_{secrets.token_hex(16)}"}
        )
        self._replays[idempotency_key] = created
        return created

    def retrieve(self, endpoint_id: str) -> Endpoint:
        self._call("retrieve", endpoint_id)
        return Endpoint.from_stripe(copy.deepcopy(self._existing(endpoint_id)))

    def update(self, endpoint_id: str, changes: Mapping[str, Any]) -> Endpoint:
        self._call("update", endpoint_id)
        obj = self._existing(endpoint_id)
        unknown = set(changes) - {"url", "enabled_events", "description", "disabled", "metadata"}
        if unknown:
            raise StripeCallError(
                stripe_error(400, None, f"Received unknown parameter: {sorted(unknown)[0]}")
            )
        obj.update(changes)
        return Endpoint.from_stripe(copy.deepcopy(obj))

    def delete(self, endpoint_id: str) -> None:
        self._call("delete", endpoint_id)
        self._existing(endpoint_id)
        del self.endpoints[endpoint_id]

    def called(self, method: str) -> list[Any]:
        return [subject for m, subject in self.calls if m == method]


@dataclass
class FakeWebhookSecrets:
    """`registration.ports.WebhookSecrets`: secret id -> its JSON value (the deploy's placeholder first)."""

    values: dict[str, str] = field(
        default_factory=lambda: {WEBHOOK_SECRET_ID: "Zx8Kq2LmN4pR6sT1uV3wY5aB7cD9eF0g"}
    )
    writes: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    fail_read: bool = False
    fail_write: bool = False

    def current(self, secret_id: str) -> str | None:
        if self.fail_read:
            raise SecretUnavailableError("cannot read secret: ThrottlingException")
        value = self.values[secret_id]
        current = json.loads(value).get("current") if value.startswith("{") else value
        return current if isinstance(current, str) and current.startswith("whsec_") else None

    def write(self, secret_id: str, *, current: str, previous: str | None) -> None:
        if self.fail_write:
            raise SecretUnavailableError("cannot write secret: AccessDeniedException")
        document = {"current": current, **({"previous": previous} if previous else {})}
        self.writes.append((secret_id, document))
        self.values[secret_id] = json.dumps(document)

    def document(self, secret_id: str = WEBHOOK_SECRET_ID) -> dict[str, Any]:
        value = self.values[secret_id]
        parsed: dict[str, Any] = json.loads(value) if value.startswith("{") else {"raw": value}
        return parsed


def custom_resource_event(
    request_type: str = "Create",
    *,
    physical_id: str | None = None,
    old: Mapping[str, Any] | None = None,
    **properties: Any,
) -> dict[str, Any]:
    """The request the provider framework passes to `on_event` (from
    events/aws/cloudformation_custom_resource.json), with properties overridden (`Url=...`,
    `Connect="true"`) and, for an Update, the old ones (the canonical ones overridden by `old`)."""
    event: dict[str, Any] = load_event("aws/cloudformation_custom_resource.json")
    base = event["ResourceProperties"]
    event["RequestType"] = request_type
    event["ResourceProperties"] = {**base, **properties}
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if request_type == "Update":
        event["OldResourceProperties"] = {**base, **(old or {})}
    return event


def request(request_type: str = "Create", **options: Any) -> RegistrationRequest:
    return RegistrationRequest.model_validate(custom_resource_event(request_type, **options))
