"""The decisions of a registration, pure: what a custom resource request means for Stripe's endpoint.

| request | without a key | with a key |
| --- | --- | --- |
| Create | skip (physical id says so) | create |
| Update, nothing registered yet | skip | create |
| Update, URL / events / description changed | keep | update in place |
| Update, API version, Connect or the webhook secret changed | keep | replace: Stripe cannot change those |
| Update, nothing Stripe sees changed (a new revision) | keep | check (re-create if deleted meanwhile) |
| Delete of an endpoint | keep (say to delete it in the Dashboard) | delete |
| Delete of a resource that registered nothing | keep | keep |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stripe_middleware.registration.models import (
    Endpoint,
    EndpointSpec,
    RegistrationRequest,
    ResourceProperties,
    is_endpoint_id,
)

UPDATABLE = ("url", "enabled_events", "description")  # what Stripe changes on an existing endpoint


class Step(StrEnum):
    CREATE = "create"  # a new endpoint, its signing secret into the webhook secret
    UPDATE = "update"  # change the endpoint in place
    REPLACE = "replace"  # a new endpoint, roll the secret (old one kept as `previous`), delete the old one
    CHECK = "check"  # nothing to change: the endpoint must still exist (re-created if it was deleted)
    DELETE = "delete"
    SKIP = "skip"  # no key: register nothing and answer a physical id saying so
    KEEP = "keep"  # nothing to do, or nothing that can be done without a key


@dataclass(frozen=True)
class Plan:
    step: Step
    endpoint_id: str | None = None  # the registered endpoint acted on (update, replace, check, delete)
    changes: dict[str, Any] = field(default_factory=dict)  # the in-place update
    reason: str = ""


@dataclass(frozen=True)
class Difference:
    """One way an endpoint in Stripe differs from what the stack expects."""

    field: str
    expected: str
    actual: str


def plan(request: RegistrationRequest, *, has_key: bool) -> Plan:
    """What to do for `request`; `has_key`: the key secret holds a Stripe key (sk_/rk_)."""
    registered = request.physical_resource_id if is_endpoint_id(request.physical_resource_id) else None
    if request.request_type == "Delete":
        return _plan_delete(registered, has_key=has_key)
    if not has_key:
        if registered:
            return Plan(Step.KEEP, registered, reason=f"no Stripe key: endpoint {registered} left as it is")
        return Plan(Step.SKIP, reason="no Stripe key in the key secret: registration skipped")
    return _plan_with_key(request, registered)


def _plan_with_key(request: RegistrationRequest, registered: str | None) -> Plan:
    if request.request_type == "Create" or registered is None or request.old_properties is None:
        return Plan(Step.CREATE)
    replaced = replacement_reasons(request.old_properties, request.properties)
    if replaced:
        return Plan(Step.REPLACE, registered, reason="; ".join(replaced))
    changes = update_changes(request.old_properties.spec(), request.properties.spec())
    if changes:
        return Plan(Step.UPDATE, registered, changes, reason=f"changed: {', '.join(changes)}")
    return Plan(Step.CHECK, registered)


def _plan_delete(registered: str | None, *, has_key: bool) -> Plan:
    if registered is None:
        return Plan(Step.KEEP, reason="nothing was registered")
    if not has_key:
        return Plan(
            Step.KEEP,
            registered,
            reason=f"no Stripe key to delete endpoint {registered} with: delete it in the Dashboard",
        )
    return Plan(Step.DELETE, registered)


def replacement_reasons(old: ResourceProperties, new: ResourceProperties) -> list[str]:
    """Why the endpoint needs replacing: what Stripe fixes at creation, or a webhook secret that never
    received this endpoint's signing secret (Stripe shows a secret only when it creates the endpoint)."""
    reasons = []
    if old.api_version != new.api_version:
        reasons.append(f"API version {old.api_version} -> {new.api_version} (fixed at creation)")
    if old.connect != new.connect:
        reasons.append(
            f"connect {str(old.connect).lower()} -> {str(new.connect).lower()} (fixed at creation)"
        )
    if old.webhook_secret_id != new.webhook_secret_id:
        reasons.append("another webhook secret (Stripe shows a signing secret only at creation)")
    return reasons


def update_changes(old: EndpointSpec, new: EndpointSpec) -> dict[str, Any]:
    """The update params for what changed among the fields Stripe updates in place."""
    changes: dict[str, Any] = {}
    if old.url != new.url:
        changes["url"] = new.url
    if set(old.enabled_events) != set(new.enabled_events):
        changes["enabled_events"] = list(new.enabled_events)
    if old.description != new.description:
        changes["description"] = new.description
    return changes


def differences(expected: EndpointSpec, actual: Endpoint) -> list[Difference]:
    """How `actual` differs from what the stack expects (empty: as registered and enabled)."""
    found = []
    if actual.url != expected.url:
        found.append(Difference("url", expected.url, actual.url))
    if set(actual.enabled_events) != set(expected.enabled_events):
        found.append(
            Difference("enabled_events", ",".join(expected.enabled_events), ",".join(actual.enabled_events))
        )
    if actual.api_version != expected.api_version:
        found.append(Difference("api_version", expected.api_version, str(actual.api_version)))
    if actual.status != "enabled":
        found.append(Difference("status", "enabled", actual.status))
    return found
