"""What a registration works on: the endpoint the stack wants (`EndpointSpec`), the custom resource's
properties and request as CloudFormation sends them, the endpoint Stripe has, and the answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ALL_EVENTS = ("*",)  # Stripe's "every event but those that need explicit selection"
ENDPOINT_ID_PREFIX = "we_"
# The physical id of a custom resource that registered nothing: the deploy went on without a key.
NOT_REGISTERED = "not-registered:no-stripe-key"
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


def validate_enabled_events(events: Sequence[str]) -> tuple[str, ...]:
    """`("*",)` or distinct Stripe event types (`invoice.paid`); ValueError saying what is wrong."""
    chosen = tuple(events)
    if not chosen:
        raise ValueError("enabled_events is empty: give Stripe event types, or ['*'] for all")
    if "*" in chosen and len(chosen) > 1:
        raise ValueError("enabled_events: '*' already means every event; give it alone")
    malformed = [e for e in chosen if e != "*" and not _EVENT_TYPE.match(e)]
    if malformed:
        raise ValueError(f"enabled_events: not an event type: {', '.join(malformed)}")
    repeated = sorted({e for e in chosen if chosen.count(e) > 1})
    if repeated:
        raise ValueError(f"enabled_events: listed twice: {', '.join(repeated)}")
    return chosen


def is_endpoint_id(physical_id: str | None) -> bool:
    """A custom resource's physical id names a Stripe endpoint (else it registered nothing)."""
    return bool(physical_id) and str(physical_id).startswith(ENDPOINT_ID_PREFIX)


class EndpointSpec(BaseModel):
    """The webhook endpoint the stack wants in Stripe."""

    model_config = ConfigDict(frozen=True)
    url: str = Field(pattern=r"^https?://\S+$")
    enabled_events: tuple[str, ...] = ALL_EVENTS
    api_version: str = Field(min_length=1)
    connect: bool = False  # events of connected accounts (Stripe cannot change this after creation)
    description: str = ""

    @field_validator("enabled_events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return validate_enabled_events(value)

    @property
    def route(self) -> str:
        return "connect" if self.connect else "account"


class ResourceProperties(BaseModel):
    """The custom resource's properties (`Custom::StripeWebhookEndpoint`), as CloudFormation sends them:
    PascalCase, booleans as "true"/"false"."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # ServiceToken, and whatever CDK adds
    url: str = Field(alias="Url")
    enabled_events: tuple[str, ...] = Field(ALL_EVENTS, alias="EnabledEvents")
    api_version: str = Field(alias="ApiVersion")
    connect: bool = Field(False, alias="Connect")
    description: str = Field("", alias="Description")
    key_secret_id: str = Field(min_length=1, alias="KeySecretId")  # the restricted key (Webhook Endpoints)
    webhook_secret_id: str = Field(min_length=1, alias="WebhookSecretId")  # where the signing secret goes
    revision: str = Field("", alias="Revision")  # a new value re-runs the registration (nothing else)

    @field_validator("enabled_events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return validate_enabled_events(value)

    def spec(self) -> EndpointSpec:
        return EndpointSpec(
            url=self.url,
            enabled_events=self.enabled_events,
            api_version=self.api_version,
            connect=self.connect,
            description=self.description,
        )


class RegistrationRequest(BaseModel):
    """The CloudFormation custom resource request the provider framework passes to `on_event`."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    request_type: Literal["Create", "Update", "Delete"] = Field(alias="RequestType")
    request_id: str = Field(alias="RequestId")
    logical_resource_id: str = Field(alias="LogicalResourceId")
    physical_resource_id: str | None = Field(None, alias="PhysicalResourceId")
    properties: ResourceProperties = Field(alias="ResourceProperties")
    old_properties: ResourceProperties | None = Field(None, alias="OldResourceProperties")


@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint as Stripe answers it; `secret` only in the answer to its creation."""

    id: str
    url: str
    enabled_events: tuple[str, ...]
    api_version: str | None
    status: str  # enabled | disabled
    livemode: bool
    description: str | None = None
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_stripe(cls, obj: dict[str, Any]) -> Endpoint:
        return cls(
            id=str(obj["id"]),
            url=str(obj.get("url") or ""),
            enabled_events=tuple(obj.get("enabled_events") or ()),
            api_version=obj.get("api_version"),
            status=str(obj.get("status") or ""),
            livemode=obj.get("livemode") is True,
            description=obj.get("description"),
            secret=obj.get("secret"),
        )


@dataclass(frozen=True)
class Registration:
    """What a request did: the physical id to answer CloudFormation, and warnings for the log."""

    physical_id: str
    step: str
    endpoint_id: str | None = None
    notes: tuple[str, ...] = ()

    def response(self) -> dict[str, Any]:
        """The provider framework's `on_event` answer (never a secret: CloudFormation shows `Data`)."""
        return {"PhysicalResourceId": self.physical_id, "Data": {"EndpointId": self.endpoint_id or ""}}
