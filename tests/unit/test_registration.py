"""Registration: what each custom resource request means (plan), and carrying it out against in-memory
Stripe endpoints and webhook secrets without ever leaving a half registration behind."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from events import stripe_object
from stripe_middleware.registration.models import (
    NOT_REGISTERED,
    Endpoint,
    EndpointSpec,
    RegistrationRequest,
    validate_enabled_events,
)
from stripe_middleware.registration.plan import Step, differences, plan
from stripe_middleware.registration.ports import RegistrationFailedError
from stripe_middleware.registration.register import Registrar, register
from stripe_middleware.shared.contract import STRIPE_API_VERSION
from tests.fakes.registration import (
    RATE_LIMITED,
    UNAVAILABLE,
    WEBHOOK_SECRET_ID,
    FakeWebhookEndpoints,
    FakeWebhookSecrets,
    request,
    stripe_error,
)

FIXTURE = stripe_object("webhook_endpoint")  # a real endpoint: url, enabled_events, status ...
URL = "https://k3v9x2qf7a.execute-api.us-east-1.amazonaws.com/webhooks/stripe"  # the canonical request's
OTHER_URL = "https://p8w2m5n1c4.execute-api.us-east-1.amazonaws.com/webhooks/stripe"
OLDER_VERSION = "2026-09-30.endive"
MANUAL_SECRET = "whsec_registered_by_hand_0123456789abcdef"


# -- plan: what a request means ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "has_key", "step"),
    [
        ({}, True, Step.CREATE),
        ({}, False, Step.SKIP),
    ],
)
def test_a_create_registers_with_a_key_and_skips_without(options: Any, has_key: bool, step: Step) -> None:
    assert plan(request("Create", **options), has_key=has_key).step is step


def test_an_update_changes_url_and_events_in_place_and_says_what_changed() -> None:
    decided = plan(
        request("Update", physical_id="we_1", Url=OTHER_URL, EnabledEvents=FIXTURE["enabled_events"]),
        has_key=True,
    )
    assert decided.step is Step.UPDATE and decided.endpoint_id == "we_1"
    assert decided.changes == {"url": OTHER_URL, "enabled_events": FIXTURE["enabled_events"]}
    assert decided.reason == "changed: url, enabled_events"


def test_events_in_another_order_are_no_change() -> None:
    events = FIXTURE["enabled_events"]
    decided = plan(
        request("Update", physical_id="we_1", EnabledEvents=events[::-1], old={"EnabledEvents": events}),
        has_key=True,
    )
    assert decided.step is Step.CHECK


@pytest.mark.parametrize(
    ("new", "old", "why"),
    [
        ({"ApiVersion": STRIPE_API_VERSION}, {"ApiVersion": OLDER_VERSION}, "API version"),
        ({"Connect": "true"}, {"Connect": "false"}, "connect false -> true"),
        ({"WebhookSecretId": "arn:aws:secretsmanager:us-east-1:1:secret:Other-Ab12Cd"}, {}, "webhook secret"),
    ],
)
def test_what_stripe_fixes_at_creation_replaces_the_endpoint(
    new: dict[str, Any], old: dict[str, Any], why: str
) -> None:
    decided = plan(request("Update", physical_id="we_1", old=old, **new), has_key=True)
    assert decided.step is Step.REPLACE and decided.endpoint_id == "we_1"
    assert why in decided.reason


def test_a_new_revision_alone_checks_the_endpoint_still_exists() -> None:
    assert plan(request("Update", physical_id="we_1", Revision="2"), has_key=True).step is Step.CHECK


def test_an_update_after_a_skipped_create_registers_once_a_key_is_there() -> None:
    assert plan(request("Update", physical_id=NOT_REGISTERED, Revision="2"), has_key=True).step is Step.CREATE
    assert plan(request("Update", physical_id=NOT_REGISTERED, Revision="2"), has_key=False).step is Step.SKIP


def test_without_a_key_a_registered_endpoint_is_left_alone() -> None:
    decided = plan(request("Update", physical_id="we_1", Url=OTHER_URL), has_key=False)
    assert decided.step is Step.KEEP and "left as it is" in decided.reason


@pytest.mark.parametrize(
    ("physical_id", "has_key", "step"),
    [
        ("we_1", True, Step.DELETE),
        ("we_1", False, Step.KEEP),  # says: delete it in the Dashboard
        (NOT_REGISTERED, True, Step.KEEP),
        ("4f1d2b8e-6c3a-4e5f-9b7d-2a8c1e0f3d96", True, Step.KEEP),  # the id of a Create that failed
    ],
)
def test_delete_acts_only_on_a_registered_endpoint(physical_id: str, has_key: bool, step: Step) -> None:
    assert plan(request("Delete", physical_id=physical_id), has_key=has_key).step is step


def test_properties_arrive_as_cloudformation_sends_them() -> None:
    parsed = request("Create", Connect="true", EnabledEvents=["invoice.paid", "invoice.payment_failed"])
    spec = parsed.properties.spec()
    assert spec.connect is True and spec.route == "connect"
    assert spec.enabled_events == ("invoice.paid", "invoice.payment_failed")
    assert spec.api_version == STRIPE_API_VERSION


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "empty"),
        (["*", "invoice.paid"], "alone"),
        (["invoice paid"], "not an event type"),
        (["invoice.paid", "invoice.paid"], "listed twice"),
    ],
)
def test_enabled_events_are_checked(events: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_enabled_events(events)
    with pytest.raises(ValidationError, match=message):
        request("Create", EnabledEvents=events)


def test_a_request_without_the_secret_ids_is_refused() -> None:
    with pytest.raises(ValidationError, match="WebhookSecretId"):
        request("Create", WebhookSecretId="")


def test_differences_name_every_field_that_is_not_as_expected() -> None:
    expected = EndpointSpec(url=URL, enabled_events=("*",), api_version=STRIPE_API_VERSION)
    actual = Endpoint.from_stripe(FIXTURE)  # another URL, two events, no pinned version, enabled
    assert [d.field for d in differences(expected, actual)] == ["url", "enabled_events", "api_version"]
    same = Endpoint.from_stripe(
        {**FIXTURE, "url": URL, "enabled_events": ["*"], "api_version": STRIPE_API_VERSION}
    )
    assert differences(expected, same) == []
    disabled = Endpoint.from_stripe(
        {
            **FIXTURE,
            "url": URL,
            "enabled_events": ["*"],
            "api_version": STRIPE_API_VERSION,
            "status": "disabled",
        }
    )
    assert differences(expected, disabled)[0].actual == "disabled"


# -- register: carrying it out ----------------------------------------------------------------------------
class Setup:
    def __init__(self, *, key: bool = True) -> None:
        self.stripe = FakeWebhookEndpoints()
        self.secrets = FakeWebhookSecrets()
        self.sleeps: list[float] = []
        self.registrar = Registrar(self.stripe if key else None, self.secrets, sleep=self.sleeps.append)

    def run(self, request_type: str = "Create", **options: Any) -> Any:
        return register(request(request_type, **options), self.registrar)

    def registered(self, **fields: Any) -> str:
        """An endpoint of the stack's, its secret in the webhook secret (as a create leaves them)."""
        endpoint_id = self.stripe.add(url=URL, enabled_events=["*"], api_version=OLDER_VERSION, **fields)
        self.secrets.values[WEBHOOK_SECRET_ID] = json.dumps({"current": "whsec_of_the_registered_one"})
        return endpoint_id


def test_create_registers_the_endpoint_and_puts_its_signing_secret_into_the_webhook_secret() -> None:
    setup = Setup()
    registration = setup.run("Create")
    (endpoint_id,) = setup.stripe.endpoints
    assert registration.physical_id == endpoint_id == registration.endpoint_id
    endpoint = setup.stripe.endpoints[endpoint_id]
    assert endpoint["url"] == URL and endpoint["enabled_events"] == ["*"]
    assert endpoint["api_version"] == STRIPE_API_VERSION and endpoint["connect"] is False
    document = setup.secrets.document()
    assert document["current"].startswith("whsec_") and "previous" not in document  # the placeholder goes
    assert registration.response() == {"PhysicalResourceId": endpoint_id, "Data": {"EndpointId": endpoint_id}}
    assert "whsec_" not in json.dumps(registration.response())


def test_a_secret_put_in_by_hand_stays_as_previous_so_that_endpoint_keeps_verifying() -> None:
    setup = Setup()
    setup.secrets.values[WEBHOOK_SECRET_ID] = MANUAL_SECRET
    setup.run("Create")
    assert setup.secrets.document()["previous"] == MANUAL_SECRET


def test_the_connect_endpoint_is_created_for_connected_accounts() -> None:
    setup = Setup()
    setup.run("Create", Connect="true", Url=f"{URL}/connect")
    (endpoint,) = setup.stripe.endpoints.values()
    assert endpoint["connect"] is True and endpoint["url"] == f"{URL}/connect"


def test_without_a_key_nothing_is_registered_and_the_physical_id_says_so() -> None:
    setup = Setup(key=False)
    registration = setup.run("Create")
    assert registration.physical_id == NOT_REGISTERED and registration.step == Step.SKIP
    assert "no Stripe key" in registration.notes[0]
    assert setup.secrets.writes == [] and setup.stripe.calls == []


def test_a_refused_create_fails_with_stripes_message_and_changes_nothing() -> None:
    setup = Setup()
    setup.stripe.fail = [stripe_error(400, "url_invalid", "Invalid URL: URL must be publicly accessible.")]
    with pytest.raises(RegistrationFailedError) as failed:
        setup.run("Create")
    assert "Invalid URL: URL must be publicly accessible." in str(failed.value)
    assert "400 invalid_request_error/url_invalid" in str(failed.value)
    assert setup.stripe.endpoints == {} and setup.secrets.writes == []


def test_a_secret_that_cannot_be_written_deletes_the_endpoint_just_created() -> None:
    setup = Setup()
    setup.secrets.fail_write = True
    with pytest.raises(RegistrationFailedError, match="just created was deleted again"):
        setup.run("Create")
    assert setup.stripe.endpoints == {}
    assert len(setup.stripe.called("create")) == 1 and len(setup.stripe.called("delete")) == 1


def test_an_endpoint_that_cannot_be_deleted_either_is_named_in_the_failure() -> None:
    setup = Setup()
    setup.secrets.fail_write = True
    setup.stripe.fail_on["delete"] = [stripe_error(401, None, "Invalid API Key provided")]
    with pytest.raises(RegistrationFailedError, match=r"could not be deleted.*delete it by hand"):
        setup.run("Create")


def test_a_secret_that_cannot_be_read_fails_before_stripe_is_asked() -> None:
    setup = Setup()
    setup.secrets.fail_read = True
    with pytest.raises(RegistrationFailedError, match="cannot read the webhook secret"):
        setup.run("Create")
    assert setup.stripe.calls == []


def test_rate_limits_and_outages_are_retried_with_one_idempotency_key() -> None:
    setup = Setup()
    setup.stripe.fail = [RATE_LIMITED, UNAVAILABLE]
    registration = setup.run("Create")
    assert len(setup.sleeps) == 2 and len(setup.stripe.called("create")) == 3
    assert list(setup.stripe.endpoints) == [registration.physical_id]  # one endpoint, however often asked


def test_an_outage_that_lasts_fails_the_deploy_saying_stripe_kept_failing() -> None:
    setup = Setup()
    setup.stripe.fail = [UNAVAILABLE] * 5
    with pytest.raises(RegistrationFailedError, match="Stripe kept failing to create"):
        setup.run("Create")
    assert len(setup.stripe.called("create")) == 5 and setup.stripe.endpoints == {}


def test_an_update_changes_the_endpoint_in_place_and_keeps_its_secret() -> None:
    setup = Setup()
    endpoint_id = setup.registered()
    before = setup.secrets.values[WEBHOOK_SECRET_ID]
    registration = setup.run(
        "Update",
        physical_id=endpoint_id,
        Url=OTHER_URL,
        ApiVersion=OLDER_VERSION,
        old={"ApiVersion": OLDER_VERSION},
    )
    assert registration.physical_id == endpoint_id and registration.step == Step.UPDATE
    assert setup.stripe.endpoints[endpoint_id]["url"] == OTHER_URL
    assert setup.secrets.values[WEBHOOK_SECRET_ID] == before and setup.stripe.called("create") == []


def test_a_new_api_version_replaces_the_endpoint_and_rolls_the_secret_safely() -> None:
    setup = Setup()
    old_id = setup.registered()
    registration = setup.run("Update", physical_id=old_id, old={"ApiVersion": OLDER_VERSION})
    (new_id,) = setup.stripe.endpoints
    assert registration.physical_id == new_id != old_id and registration.step == Step.REPLACE
    assert setup.stripe.endpoints[new_id]["api_version"] == STRIPE_API_VERSION
    document = setup.secrets.document()
    assert document["previous"] == "whsec_of_the_registered_one"  # in-flight deliveries of the old one verify
    assert document["current"] != document["previous"]
    # the order that keeps every delivery verifiable: create the new one, roll the secret, delete the old one
    assert [m for m, _ in setup.stripe.calls] == ["create", "delete"]
    assert setup.stripe.called("delete") == [old_id]


def test_a_replaced_endpoint_that_cannot_be_deleted_is_left_to_cloudformations_clean_up() -> None:
    setup = Setup()
    old_id = setup.registered()
    setup.stripe.fail_on["delete"] = [UNAVAILABLE] * 5
    registration = setup.run("Update", physical_id=old_id, old={"ApiVersion": OLDER_VERSION})
    assert registration.physical_id != old_id and old_id in setup.stripe.endpoints
    assert any("clean-up" in note for note in registration.notes)
    # the clean-up's Delete of the old physical id then removes it
    register(request("Delete", physical_id=old_id, ApiVersion=OLDER_VERSION), setup.registrar)
    assert old_id not in setup.stripe.endpoints and registration.physical_id in setup.stripe.endpoints


def test_a_replacement_whose_secret_cannot_be_written_leaves_the_old_endpoint_and_secret_as_they_were() -> (
    None
):
    setup = Setup()
    old_id = setup.registered()
    before = setup.secrets.values[WEBHOOK_SECRET_ID]
    setup.secrets.fail_write = True
    with pytest.raises(RegistrationFailedError):
        setup.run("Update", physical_id=old_id, old={"ApiVersion": OLDER_VERSION})
    assert list(setup.stripe.endpoints) == [old_id] and setup.secrets.values[WEBHOOK_SECRET_ID] == before


@pytest.mark.parametrize("change", [{"Url": OTHER_URL}, {"Revision": "2"}])
def test_an_endpoint_deleted_in_the_dashboard_is_registered_anew(change: dict[str, str]) -> None:
    setup = Setup()
    old_id = setup.registered()
    del setup.stripe.endpoints[old_id]
    registration = setup.run(
        "Update", physical_id=old_id, ApiVersion=OLDER_VERSION, old={"ApiVersion": OLDER_VERSION}, **change
    )
    (new_id,) = setup.stripe.endpoints
    assert registration.physical_id == new_id and registration.step == Step.CREATE
    assert "no longer exists" in registration.notes[-1]
    assert setup.secrets.document()["current"] != "whsec_of_the_registered_one"


def test_delete_deletes_the_endpoint_and_an_endpoint_already_gone_counts_as_deleted() -> None:
    setup = Setup()
    endpoint_id = setup.registered()
    assert setup.run("Delete", physical_id=endpoint_id).physical_id == endpoint_id
    assert setup.stripe.endpoints == {}
    again = setup.run("Delete", physical_id=endpoint_id)
    assert again.step == Step.DELETE and "already deleted" in again.notes[0]


def test_a_refused_delete_fails_with_stripes_message() -> None:
    setup = Setup()
    endpoint_id = setup.registered()
    setup.stripe.fail = [stripe_error(401, None, "Expired API Key provided: rk_test_****")]
    with pytest.raises(RegistrationFailedError, match="Expired API Key provided"):
        setup.run("Delete", physical_id=endpoint_id)


def test_without_a_key_a_delete_leaves_the_endpoint_and_says_where_to_delete_it() -> None:
    setup = Setup(key=False)
    registration = setup.run("Delete", physical_id="we_1")
    assert registration.physical_id == "we_1" and "Dashboard" in registration.notes[0]


def test_requests_parse_from_the_canonical_event() -> None:
    parsed = request("Update", physical_id="we_1", old={"Url": OTHER_URL})
    assert isinstance(parsed, RegistrationRequest)
    assert parsed.old_properties is not None and parsed.old_properties.url == OTHER_URL
    assert parsed.properties.webhook_secret_id == WEBHOOK_SECRET_ID
