"""`stripe-middleware status --stage prod`: the stack's webhook endpoints as Stripe has them, against what
the stack expects, and the last events Stripe sent.

What the stack expects comes from its outputs (`WebhookUrl`, `WebhookEndpointId`, `WebhookEnabledEvents`,
`StripeApiVersion`, and the Connect ones when Connect is registered). The endpoints are read with the
registration key (`<stack>/stripe-registration-key`; "Webhook Endpoints: Write" includes reading), the
events (`GET /v1/events`, and `delivery_success=false` for those not yet delivered to every endpoint) with
the StripeReadOnlyKey, or the registration key while that holds none. `STRIPE_API_BASE` points both at a
Stripe-compatible server. Exit 0 when every endpoint is registered, enabled and as expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from stripe_middleware_dev import targets

if TYPE_CHECKING:  # the Stripe SDK loads only when the command runs
    import stripe

    from stripe_middleware.adapters.stripe.reader import SdkStripeLister
    from stripe_middleware.adapters.stripe.webhook_endpoints import SdkWebhookEndpoints
    from stripe_middleware.registration.models import Endpoint

DEFAULT_EVENTS = 10
# route -> (output of its URL, output of its endpoint id)
ROUTES = {
    "account": ("WebhookUrl", "WebhookEndpointId"),
    "connect": ("ConnectWebhookUrl", "ConnectWebhookEndpointId"),
}


@dataclass
class RouteStatus:
    route: str
    endpoint_id: str
    expected: dict[str, Any]
    actual: dict[str, Any] | None = None  # the endpoint as Stripe has it
    differences: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None  # why there is nothing to compare
    also_at_url: list[str] = field(default_factory=list)  # other endpoints with this URL (deliver twice)

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.differences


@dataclass
class EventsStatus:
    recent: list[dict[str, Any]] = field(default_factory=list)  # newest first
    undelivered: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="the stack's Stripe webhook endpoints against what the stack expects, and the last events",
    )
    parser.add_argument(
        "--events",
        type=targets.positive_int,
        default=DEFAULT_EVENTS,
        metavar="N",
        help="show the last N events",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    targets.add_stage_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "stage", None):
        print(
            "error: status reads a deployed stack: give --stage (local mode registers nothing)",
            file=sys.stderr,
        )
        return 2
    target = targets.resolve(args)
    outputs = target.outputs
    if "WebhookEndpointId" not in outputs:
        print(
            f"error: stripe-middleware-{args.stage} has no WebhookEndpointId output: deploy a version that "
            "registers itself with Stripe first",
            file=sys.stderr,
        )
        return 2
    secrets = target.client("secretsmanager")
    registration_key = _key(secrets, outputs.get("StripeRegistrationKeySecretName"))
    read_key = _key(secrets, outputs.get("stripe_read_only_key_secret_arn")) or registration_key
    routes = endpoint_statuses(
        outputs, _endpoints(registration_key), key_secret=outputs.get("StripeRegistrationKeySecretName")
    )
    events = events_status(_lister(read_key), args.events)
    if args.json:
        print(
            json.dumps(
                {"routes": [asdict(r) | {"ok": r.ok} for r in routes], "events": asdict(events)}, indent=2
            )
        )
    else:
        print(render(f"stripe-middleware-{args.stage}", routes, events))
    return 0 if all(r.ok for r in routes) else 1


def _key(secrets: Any, secret_id: str | None) -> str | None:
    from stripe_middleware.adapters.registration import read_registration_key
    from stripe_middleware.shared.errors import SecretUnavailableError

    if not secret_id:
        return None
    try:
        return read_registration_key(secrets, secret_id)
    except SecretUnavailableError as error:
        print(f"warning: {error}", file=sys.stderr)
        return None


def _client(key: str) -> stripe.StripeClient:
    from stripe_middleware.adapters.stripe.client import make_stripe_client
    from stripe_middleware.shared.contract import STRIPE_API_VERSION

    api_base = os.environ.get("STRIPE_API_BASE", "").strip() or None
    return make_stripe_client(key, api_version=STRIPE_API_VERSION, api_base=api_base)


def _endpoints(key: str | None) -> SdkWebhookEndpoints | None:
    from stripe_middleware.adapters.stripe.webhook_endpoints import SdkWebhookEndpoints

    return SdkWebhookEndpoints(_client(key)) if key else None


def _lister(key: str | None) -> SdkStripeLister | None:
    from stripe_middleware.adapters.stripe.reader import SdkStripeLister

    return SdkStripeLister(_client(key)) if key else None


def endpoint_statuses(
    outputs: dict[str, Any], endpoints: SdkWebhookEndpoints | None, *, key_secret: str | None
) -> list[RouteStatus]:
    """Each registered route's endpoint against the outputs; `endpoints` None: no registration key."""
    from stripe_middleware.registration.models import EndpointSpec, is_endpoint_id
    from stripe_middleware.registration.plan import differences
    from stripe_middleware.shared.stripe_calls import StripeCallError

    statuses = []
    listed: list[Endpoint] | None = None
    for route, (url_output, id_output) in ROUTES.items():
        if id_output not in outputs:
            continue
        expected = EndpointSpec(
            url=str(outputs[url_output]),
            enabled_events=tuple(str(outputs.get("WebhookEnabledEvents") or "*").split(",")),
            api_version=str(outputs.get("StripeApiVersion") or ""),
            connect=route == "connect",
        )
        status = RouteStatus(
            route,
            str(outputs[id_output]),
            expected.model_dump(include={"url", "enabled_events", "api_version"}),
        )
        statuses.append(status)
        if not is_endpoint_id(status.endpoint_id):
            status.problem = (
                f"not registered ({status.endpoint_id}): put a restricted key (Webhook Endpoints: Write) "
                f"into {key_secret}, then deploy with -c stripeRegistrationRevision=<a new value>"
            )
            continue
        if endpoints is None:
            status.problem = f"cannot read it: no Stripe key in {key_secret}"
            continue
        try:
            endpoint = endpoints.retrieve(status.endpoint_id)
            listed = listed if listed is not None else endpoints.list_all()
        except StripeCallError as error:
            failure = error.failure
            status.problem = (
                f"{status.endpoint_id} no longer exists in Stripe (deleted in the Dashboard?): deploy with "
                "-c stripeRegistrationRevision=<a new value> to register it anew"
                if failure.code == "resource_missing"
                else f"Stripe answered {failure.http_status} {failure.type}: {failure.message}"
            )
            continue
        status.actual = {
            "url": endpoint.url,
            "enabled_events": list(endpoint.enabled_events),
            "api_version": endpoint.api_version,
            "status": endpoint.status,
            "livemode": endpoint.livemode,
        }
        status.differences = [asdict(d) for d in differences(expected, endpoint)]
        status.also_at_url = [e.id for e in listed if e.url == expected.url and e.id != endpoint.id]
    return statuses


def events_status(lister: SdkStripeLister | None, limit: int) -> EventsStatus:
    """The last `limit` events, and those of them Stripe has not delivered to every endpoint yet."""
    from stripe_middleware.shared.stripe_calls import StripeCallError

    if lister is None:
        return EventsStatus(problem="no Stripe key to list events with (StripeReadOnlyKey, Events: Read)")
    try:
        recent = lister.list_page("/v1/events", {"limit": limit}, starting_after=None, stripe_account=None)
        undelivered = lister.list_page(
            "/v1/events",
            {"limit": limit, "delivery_success": "false"},
            starting_after=None,
            stripe_account=None,
        )
    except StripeCallError as error:
        failure = error.failure
        return EventsStatus(
            problem=f"Stripe answered {failure.http_status} {failure.type}: {failure.message}"
        )
    return EventsStatus(
        recent=[_event(e) for e in recent.objects], undelivered=[_event(e) for e in undelivered.objects]
    )


def _event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event.get("id"),
        "type": event.get("type"),
        "created": event.get("created"),
        "pending_webhooks": int(event.get("pending_webhooks") or 0),
    }


def render(stack: str, routes: list[RouteStatus], events: EventsStatus) -> str:
    from stripe_middleware.shared.clock import iso

    lines = [f"{stack}: Stripe webhook endpoints"]
    for status in routes:
        verdict = "as expected" if status.ok else "NOT as expected"
        lines.append(f"{status.route:<8} {status.endpoint_id}  {verdict}")
        if status.problem:
            lines.append(f"  {status.problem}")
            continue
        actual = status.actual or {}
        wrong = {d["field"]: d for d in status.differences}
        for name, label in (
            ("url", "url"),
            ("enabled_events", "events"),
            ("api_version", "api version"),
            ("status", "status"),
        ):
            value = actual.get(name)
            shown = ",".join(value) if isinstance(value, list) else str(value)
            expected = f"   expected {wrong[name]['expected']}" if name in wrong else ""
            lines.append(f"  {label:<12} {shown}{expected}")
        for other in status.also_at_url:
            lines.append(
                f"  also at this URL: {other} (not the stack's): every event arrives twice; the pipeline "
                "de-duplicates, but delete it in the Dashboard"
            )
    if events.problem:
        lines.append(f"events: {events.problem}")
        return "\n".join(lines)
    lines.append(f"last {len(events.recent)} events (Events API, newest first):")
    for event in events.recent:
        pending = event["pending_webhooks"]
        delivery = (
            "delivered" if pending == 0 else f"pending at {pending} endpoint{'s' if pending > 1 else ''}"
        )
        lines.append(f"  {iso(event['created']) or '-'}  {event['id']:<32} {event['type']:<40} {delivery}")
    undelivered = len(events.undelivered)
    lines.append(
        "every recent event was delivered"
        if not undelivered
        else f"{undelivered} recent event{'s' if undelivered > 1 else ''} not yet delivered to every "
        "endpoint (Stripe retries for 3 days; catch-up enqueues what it never delivers)"
    )
    return "\n".join(lines)
