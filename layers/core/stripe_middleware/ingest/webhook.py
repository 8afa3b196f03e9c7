"""Webhook ingest: verify, check it is a Stripe event, make it durable. Nothing else on this path.

Imports only the standard library (no Stripe SDK, no pydantic): this is the code Stripe waits on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stripe_middleware.ingest.ports import EventQueue, QueuedEvent
from stripe_middleware.ingest.signature import verify_signature
from stripe_middleware.shared.errors import RejectedError

Route = Literal["account", "connect"]
# SQS accepts 1 MiB per message; the attributes need a little of it.
DEFAULT_MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class WebhookRequest:
    route: Route
    headers: Mapping[str, str]  # names lower-cased by the adapter
    body: bytes


@dataclass(frozen=True)
class AcceptedEvent:
    event_id: str
    event_type: str
    created: int
    account: str | None
    livemode: bool
    message_id: str


def parse_event(body: bytes) -> tuple[str, dict[str, Any]]:
    """Return (text, event): the body must be a UTF-8 Stripe Event; only the envelope is checked here."""
    try:
        text = body.decode("utf-8")
        event = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise RejectedError("invalid_json", "Body is not valid JSON") from error
    if not isinstance(event, dict):
        raise RejectedError("not_an_event", "Body is not a JSON object")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    data = event.get("data")
    problems = []
    if not (isinstance(event_id, str) and event_id.startswith("evt_")):
        problems.append("id must be an evt_ id")
    if event.get("object") != "event":
        problems.append('object must be "event"')
    if not (isinstance(event_type, str) and event_type):
        problems.append("type must be a non-empty string")
    if not isinstance(created, int) or isinstance(created, bool):
        problems.append("created must be an integer")
    if not (isinstance(data, dict) and isinstance(data.get("object"), dict)):
        problems.append("data.object must be an object")
    if problems:
        raise RejectedError("not_an_event", "Body is not a Stripe event: " + "; ".join(problems))
    return text, event


def accept_webhook(
    request: WebhookRequest,
    *,
    secrets: tuple[str, ...],
    queue: EventQueue,
    now: float,
    tolerance: int,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> AcceptedEvent:
    """Return the accepted event once it is in the queue.

    Raises RejectedError (4xx, SignatureError among them: nothing enqueued) or NotDurableError (5xx).
    """
    if len(request.body) > max_body_bytes:
        raise RejectedError("payload_too_large", f"Body is larger than {max_body_bytes} bytes", status=413)
    verify_signature(
        request.body, request.headers.get("stripe-signature"), secrets, now=now, tolerance=tolerance
    )
    text, event = parse_event(request.body)
    queued = queued_event(text, event, route=request.route, source="webhook")
    message_id = queue.enqueue(queued)
    account = queued.attributes["account"] or None
    livemode = event.get("livemode") is True
    return AcceptedEvent(event["id"], event["type"], event["created"], account, livemode, message_id)


def queued_event(text: str, event: Mapping[str, Any], *, route: Route, source: str) -> QueuedEvent:
    """The message an event enters the pipeline as, from a webhook or the Events API (catch-up): the
    body as Stripe sent it, and attributes an operator can filter a queue or its DLQ by."""
    account = event.get("account") if isinstance(event.get("account"), str) else None
    attributes = {
        "event_id": str(event.get("id") or ""),
        "event_type": str(event.get("type") or ""),
        "account": account or "",
        "livemode": "true" if event.get("livemode") is True else "false",
        "api_version": str(event.get("api_version") or ""),
        "route": route,
        "source": source,
    }
    return QueuedEvent(body=text, attributes=attributes)
