"""EventBridge delivers to SQS wrapped in an envelope; the payload is its `detail`."""

from __future__ import annotations

from typing import Any


def unwrap_eventbridge(document: Any) -> Any:
    """The `detail` of an EventBridge envelope, or the document itself when it is not one."""
    if isinstance(document, dict) and "detail" in document and "detail-type" in document:
        return document["detail"]
    return document
