"""A Stripe-compatible HTTP server on 127.0.0.1 for tests: the real Stripe SDK talks to it over HTTP.

- GET serves objects put into `objects` by path (`/v1/customers/cus_123`), and lists them like Stripe's
  list endpoints (`GET /v1/customers`: newest first, `limit`, `starting_after`, `created[gte|lte]`;
  `/v1/customers/{id}/payment_methods`: that customer's payment methods).
- POST to a list path creates an object (`/v1/customers` -> `cus_...`); POST to an object path updates it.
- Like Stripe, a repeated `Idempotency-Key` replays the first answer instead of acting twice.
- `rate_limit` (requests/s, token bucket with that burst) answers 429 beyond it, as Stripe does.
- `fail_next` answers the next requests with injected statuses (500, 429, or 409 "lock_timeout");
  `fail_when(matches, ...)` does so for the next requests that `matches` (a page, a path).
- `api_key`, when set, is the only key accepted: any other gets Stripe's 401, as a wrong key does.
- `delays` holds the answers to a path for that many seconds (a slow endpoint).
- `page_size` caps list pages below `limit` (Stripe's contract is `has_more`, not full pages), so a
  test pages through a few objects instead of hundreds.
- `GET /v1/balance_transactions?payout=po_...` lists the transactions `payout_transactions[po_...]` names
  (as Stripe, from its own association: the listed rows carry no `payout` field), `?source=` those of one
  object, and `expand[]=data.source` replaces each source id by that object (found by id among `objects`).
- `/v1/webhook_endpoints` behaves as Stripe's: create (the signing `secret` only in that answer; an
  unknown event type or API version is refused with 400), retrieve, list, update (only `url`,
  `enabled_events`, `description`, `disabled`, `metadata`), DELETE. `GET /v1/events?delivery_success=`
  keeps the events whose webhooks are all delivered (`pending_webhooks` 0) or not.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from events import EVENTS_DIR, event_types, stripe_object
from stripe_middleware.backfill.resources import RESOURCES

# The list endpoints it serves: every one a backfill reads, the Events API and the webhook endpoints.
COLLECTIONS = {r.path for r in RESOURCES.values() if "{" not in r.path}
COLLECTIONS |= {"/v1/events", "/v1/webhook_endpoints"}
PREFIXES = {
    "customers": "cus",
    "refunds": "re",
    "payment_intents": "pi",
    "subscriptions": "sub",
    "invoices": "in",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    status: int = 0
    at: float = 0.0


@dataclass
class FakeStripe:
    url: str = ""
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    fail_next: list[int | str] = field(default_factory=list)  # 500, 503, "lock_timeout", 402 ...
    rate_limit: float | None = None
    created: list[str] = field(default_factory=list)  # ids of objects really created (not replays)
    api_key: str | None = None  # None: any key is accepted
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    page_size: int | None = None  # at most this many objects per list page (None: `limit`)
    webhook_secrets: dict[str, str] = field(default_factory=dict)  # endpoint id -> its signing secret
    payout_transactions: dict[str, list[str]] = field(default_factory=dict)  # payout id -> txn ids
    failures: list[tuple[Callable[[RecordedRequest], bool], list[int | str]]] = field(default_factory=list)
    _replays: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _tokens: float = 0.0
    _refilled: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_token(self) -> bool:
        if self.rate_limit is None:
            return True
        now = time.monotonic()
        if not self._refilled:
            self._tokens, self._refilled = self.rate_limit, now
        self._tokens = min(self.rate_limit, self._tokens + (now - self._refilled) * self.rate_limit)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def successful_posts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.status == 200]

    def gets(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "GET" and r.path == path]

    def fail_when(self, matches: Callable[[RecordedRequest], bool], *kinds: int | str) -> None:
        """Answer the next requests that `matches` with `kinds` (as `fail_next`), one per request."""
        with self.lock:
            self.failures.append((matches, list(kinds)))

    def _injected_failure(self, record: RecordedRequest) -> int | str | None:
        if self.fail_next:
            return self.fail_next.pop(0)
        for matches, kinds in self.failures:
            if kinds and matches(record):
                return kinds.pop(0)
        return None


def _error(kind: int | str) -> tuple[int, dict[str, Any], dict[str, str]]:
    if kind == 429:
        body = {
            "error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}
        }
        return 429, body, {}
    if kind == "lock_timeout":
        body = {
            "error": {"type": "invalid_request_error", "code": "lock_timeout", "message": "Object locked"}
        }
        return 409, body, {"Stripe-Should-Retry": "true"}
    if kind == 401:
        body = {
            "error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****"}
        }
        return 401, body, {}
    if kind == "api_key_expired":
        body = {
            "error": {
                "type": "invalid_request_error",
                "code": "api_key_expired",
                "message": "Expired API Key provided: rk_test_****",
            }
        }
        return 401, body, {}
    if kind == 402:
        body = {
            "error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
        }
        return 402, body, {"Stripe-Should-Retry": "false"}
    return int(kind), {"error": {"type": "api_error", "message": f"injected {kind}"}}, {}


def _handler(state: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(
            self, record: RecordedRequest, status: int, body: dict[str, Any], headers: dict[str, str]
        ) -> None:
            record.status = status
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Request-Id", f"req_fake_{len(state.requests)}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            params = dict(parse_qsl(self.rfile.read(length).decode())) if length else {}
            path, _, query = self.path.partition("?")
            params.update(parse_qsl(query))
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = RecordedRequest(method, path, headers, params, at=time.monotonic())
            if path in state.delays:
                time.sleep(state.delays[path])
            with state.lock:
                state.requests.append(record)
                if not state.take_token():
                    self._answer(record, *_error(429))
                    return
                if state.api_key is not None and headers.get("authorization") != f"Bearer {state.api_key}":
                    self._answer(record, *_error(401))
                    return
                failure = state._injected_failure(record)
                if failure is not None:
                    status, body, extra = _error(failure)
                    self._answer(record, status, body, extra)
                    return
                key = headers.get("idempotency-key")
                if method == "POST" and key and key in state._replays:
                    status, body = state._replays[key]
                    self._answer(record, status, body, {"Idempotent-Replayed": "true"})
                    return
                status, body = self._act(method, path, params)
                if method == "POST" and key:
                    state._replays[key] = (status, body)
            self._answer(record, status, body, {})

        def _act(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
            parts = path.strip("/").split("/")  # v1, resource, [id], [action]
            if parts[1:2] == ["webhook_endpoints"]:
                return _webhook_endpoints(state, method, parts, params)
            if method == "GET":
                obj = state.objects.get(path)
                if obj:
                    return 200, obj
                listed = _list(state, path, params)
                return listed or (
                    404,
                    {"error": {"type": "invalid_request_error", "code": "resource_missing"}},
                )
            if len(parts) == 2:
                resource = parts[1]
                object_id = f"{PREFIXES.get(resource, 'obj')}_{secrets.token_hex(7)}"
                obj = {"id": object_id, "object": resource.rstrip("s"), **_unflatten(params)}
                state.objects[f"/v1/{resource}/{object_id}"] = obj
                state.created.append(object_id)
                return 200, obj
            base = "/" + "/".join(parts[:3])
            obj = state.objects.get(base)
            if obj is None:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
            if len(parts) == 4 and parts[3] == "pay":
                obj["status"] = "paid"
            else:
                obj.update(_unflatten(params))
            return 200, obj

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler


def _list(state: FakeStripe, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
    """A page of a list endpoint, or None when `path` lists nothing."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[1] == "customers" and parts[3] == "payment_methods":
        prefix, customer = "/v1/payment_methods/", parts[2]
    elif path in COLLECTIONS:
        prefix, customer = path + "/", None
    else:
        return None
    items = [
        (n, obj)
        for n, (key, obj) in enumerate(state.objects.items())
        if key.startswith(prefix)
        and "/" not in key[len(prefix) :]
        and (customer is None or obj.get("customer") == customer)
    ]
    for bound, keep in (("gte", lambda c, b: c >= b), ("lte", lambda c, b: c <= b)):
        if f"created[{bound}]" in params:
            items = [
                (n, o) for n, o in items if keep(int(o.get("created", 0)), int(params[f"created[{bound}]"]))
            ]
    if path == "/v1/events" and "delivery_success" in params:
        delivered = params["delivery_success"] == "true"
        items = [(n, o) for n, o in items if (int(o.get("pending_webhooks") or 0) == 0) is delivered]
    if path == "/v1/balance_transactions" and "payout" in params:
        members = set(state.payout_transactions.get(params["payout"], ()))
        items = [(n, o) for n, o in items if o.get("id") in members]
    if path == "/v1/balance_transactions" and "source" in params:
        items = [(n, o) for n, o in items if o.get("source") == params["source"]]
    ordered = [
        o for _, o in sorted(items, key=lambda item: (item[1].get("created", 0), item[0]), reverse=True)
    ]
    after = params.get("starting_after")
    if after:
        ids = [o.get("id") for o in ordered]
        if after not in ids:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such object: '{after}'",
                }
            }
        ordered = ordered[ids.index(after) + 1 :]
    limit = int(params.get("limit", 10))
    if state.page_size is not None:
        limit = min(limit, state.page_size)
    data = ordered[:limit]
    if "data.source" in [v for k, v in params.items() if k.startswith("expand")]:
        data = _expanded_sources(state, data)
    return 200, {"object": "list", "url": path, "data": data, "has_more": len(ordered) > limit}


def _expanded_sources(state: FakeStripe, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`expand[]=data.source`: each listed object with its `source` id replaced by that object."""
    wanted = {o["source"] for o in listed if isinstance(o.get("source"), str)}
    by_id = {obj.get("id"): obj for obj in state.objects.values() if obj.get("id") in wanted}
    found = [by_id.get(o["source"]) if isinstance(o.get("source"), str) else None for o in listed]
    return [o if source is None else {**o, "source": source} for o, source in zip(listed, found, strict=True)]


def _unflatten(params: dict[str, str]) -> dict[str, Any]:
    """`metadata[erp_id]=x` -> {"metadata": {"erp_id": "x"}} (one level, enough for the tests)."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        if "[" in key:
            outer, inner = key.split("[", 1)
            result.setdefault(outer, {})[inner.rstrip("]")] = value
        else:
            result[key] = value
    return result


WEBHOOK_ENDPOINT_UPDATABLE = {"url", "enabled_events", "description", "disabled", "metadata"}
API_VERSIONS = frozenset((EVENTS_DIR / "stripe" / "api_versions_sdk16_1_0.txt").read_text().split())


def _webhook_endpoints(
    state: FakeStripe, method: str, parts: list[str], params: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """`/v1/webhook_endpoints[/{id}]` as Stripe answers it (fixtures' `webhook_endpoint` shape)."""
    path = "/" + "/".join(parts)
    if len(parts) == 2 and method == "GET":
        return _list(state, path, params) or (404, {})
    if len(parts) == 2 and method == "POST":
        fields = _webhook_endpoint_fields(params)
        invalid = _invalid_webhook_endpoint(fields, creating=True)
        if invalid:
            return 400, {"error": {"type": "invalid_request_error", **invalid}}
        endpoint_id = f"we_{secrets.token_hex(12)}"
        obj = {
            **stripe_object("webhook_endpoint"),
            "id": endpoint_id,
            "created": int(time.time()),
            "url": fields["url"],
            "enabled_events": fields["enabled_events"],
            "api_version": fields.get("api_version"),
            "description": fields.get("description") or None,
            "status": "enabled",
        }
        state.objects[f"/v1/webhook_endpoints/{endpoint_id}"] = obj
        state.created.append(endpoint_id)
        state.webhook_secrets[endpoint_id] = f"whsec_{secrets.token_hex(16)}"
        return 200, {**obj, "secret": state.webhook_secrets[endpoint_id]}
    obj = state.objects.get(path)
    if obj is None:
        error = {"type": "invalid_request_error", "code": "resource_missing"}
        return 404, {"error": {**error, "message": f"No such webhook endpoint: '{parts[-1]}'"}}
    if method == "DELETE":
        del state.objects[path]
        return 200, {"id": obj["id"], "object": "webhook_endpoint", "deleted": True}
    if method == "POST":
        fields = _webhook_endpoint_fields(params)
        invalid = _invalid_webhook_endpoint(fields, creating=False)
        if invalid:
            return 400, {"error": {"type": "invalid_request_error", **invalid}}
        disabled = fields.pop("disabled", None)
        obj.update(fields)
        if disabled is not None:
            obj["status"] = "disabled" if disabled == "true" else "enabled"
    return 200, obj


def _webhook_endpoint_fields(params: dict[str, str]) -> dict[str, Any]:
    """Form params -> fields; `enabled_events[0]=...` -> a list, as Stripe's SDK sends arrays."""
    prefix = "enabled_events["
    events = sorted((int(k[len(prefix) : -1]), v) for k, v in params.items() if k.startswith(prefix))
    fields: dict[str, Any] = {k: v for k, v in _unflatten(params).items() if k != "enabled_events"}
    if events:
        fields["enabled_events"] = [v for _, v in events]
    return fields


def _invalid_webhook_endpoint(fields: dict[str, Any], *, creating: bool) -> dict[str, str] | None:
    allowed = WEBHOOK_ENDPOINT_UPDATABLE | ({"api_version", "connect"} if creating else set())
    unknown = [k for k in fields if k not in allowed]
    if unknown:
        return {"message": f"Received unknown parameter: {unknown[0]}", "param": unknown[0]}
    if creating and not fields.get("url"):
        return {"message": "Missing required param: url.", "param": "url"}
    if creating and not fields.get("enabled_events"):
        return {"message": "Missing required param: enabled_events.", "param": "enabled_events"}
    for n, event_type in enumerate(fields.get("enabled_events") or []):
        if event_type != "*" and event_type not in event_types():
            return {
                "message": f"Invalid enabled_events[{n}]: must be one of {', '.join(event_types()[:3])}, ...",
                "param": f"enabled_events[{n}]",
            }
    if "api_version" in fields and fields["api_version"] not in API_VERSIONS:
        return {"message": f"Invalid api_version: {fields['api_version']}", "param": "api_version"}
    return None


S = TypeVar("S", bound=FakeStripe)


@contextmanager
def serve(state: S, handler: type[BaseHTTPRequestHandler]) -> Iterator[S]:
    """Serve `state` over HTTP on a free loopback port (its `url`) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    state = FakeStripe()
    with serve(state, _handler(state)):
        yield state
