"""HTTP in and out, in API Gateway's HTTP API shape (payload format 2.0), and errors as HTTP answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from stripe_middleware.shared.errors import RejectedError, UnavailableError


def lower_headers(event: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def raw_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode() if isinstance(body, str) else bytes(body)


def route_key(event: Mapping[str, Any]) -> str:
    """`"POST /webhooks/stripe"`: the route API Gateway matched (falls back to method + raw path)."""
    key = event.get("routeKey")
    if key and key != "$default":
        return str(key)
    http = (event.get("requestContext") or {}).get("http") or {}
    return f"{http.get('method', 'GET')} {event.get('rawPath', '/')}"


def json_response(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":"), default=str),
    }


def error_response(status: int, code: str, message: str) -> dict[str, Any]:
    return json_response(status, {"error": code, "message": message})


def rejected_response(error: RejectedError) -> dict[str, Any]:
    return json_response(error.status, error.body())


def unavailable_response(error: UnavailableError) -> dict[str, Any]:
    return error_response(503, error.code, "a dependency is unavailable; retry later")
