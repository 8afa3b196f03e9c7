"""Registration Lambda: the `on_event` handler of the CDK provider framework behind the
`Custom::StripeWebhookEndpoint` resources (one per endpoint: account, and Connect when enabled).

Create registers the endpoint and puts its signing secret into the webhook secret; Update changes or
replaces it; Delete deletes it. A raised error fails the resource, and the deploy, with its message
(Stripe's own); the answer's `PhysicalResourceId` is the endpoint id, or `not-registered:no-stripe-key`
while the key secret holds no key. The event carries secret ARNs, never a secret value, and nothing
here logs one.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.registration import build_registrar
from stripe_middleware.registration.models import RegistrationRequest
from stripe_middleware.registration.ports import RegistrationFailedError
from stripe_middleware.registration.register import register
from stripe_middleware.registration.settings import RegistrationSettings

logger = Logger()


@cache
def settings() -> RegistrationSettings:
    return RegistrationSettings.from_env()


@cache
def client(service: str) -> Any:
    return aws.client(service)


def parse(event: dict[str, Any]) -> RegistrationRequest:
    try:
        return RegistrationRequest.model_validate(event)
    except ValidationError as error:
        raise RegistrationFailedError(f"invalid Custom::StripeWebhookEndpoint request: {error}") from error


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(event)
    logger.append_keys(
        request_type=request.request_type,
        logical_resource_id=request.logical_resource_id,
        physical_resource_id=request.physical_resource_id,
    )
    try:
        registration = register(request, build_registrar(request.properties, settings(), client))
    except RegistrationFailedError:
        logger.exception("registration failed: the deploy fails with this message")
        raise
    for note in registration.notes:
        logger.warning(note)
    logger.info(
        "registration done",
        extra={
            "step": registration.step,
            "endpoint_id": registration.endpoint_id,
            "url": request.properties.url,
        },
    )
    return registration.response()
