from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import stripe

from events import stripe_event
from tests.e2e.conftest import LocalStack, eventually, get, start_local


def post(
    stack: LocalStack, event: dict[str, Any] | str, secret: str | None = None
) -> tuple[int, dict[str, Any]]:
    body = event if isinstance(event, str) else json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret or stack.outputs["webhook_secret"]
    )
    request = urllib.request.Request(
        stack.outputs["webhook_url"],
        data=body.encode(),
        method="POST",
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_signed_event_is_stored_and_published(local_stack: LocalStack, subscriber: Any) -> None:
    event = stripe_event("invoice.paid", id="in_e2e_1", customer="cus_e2e")
    status, body = post(local_stack, event)
    assert (status, body) == (200, {"received": True, "id": event["id"]})
    stored = eventually(lambda: (r := get(local_stack, "/v1/objects/invoice/in_e2e_1"))[0] == 200 and r[1])
    assert stored["event_id"] == event["id"] and stored["object"]["id"] == "in_e2e_1"
    published = eventually(lambda: [p for p in subscriber() if p["detail"].get("id") == event["id"]])
    assert published[0]["detail-type"] == "invoice.paid"
    status, body = get(local_stack, "/v1/customers/cus_e2e/objects")
    assert status == 200 and [o["object_id"] for o in body["objects"]] == ["in_e2e_1"]


def test_duplicates_are_suppressed(local_stack: LocalStack, subscriber: Any) -> None:
    event = stripe_event("customer.updated", id="cus_e2e_dup")
    for _ in range(3):
        assert post(local_stack, event)[0] == 200
    marker = stripe_event("product.created", id="prod_e2e_marker")
    post(local_stack, marker)
    eventually(lambda: [p for p in subscriber() if p["detail"].get("id") == marker["id"]])
    time.sleep(2)  # let any late duplicate arrive
    assert len([p for p in subscriber() if p["detail"].get("id") == event["id"]]) == 1


def test_bad_signature_is_rejected_and_never_stored(local_stack: LocalStack) -> None:
    forged = stripe_event("charge.succeeded", id="ch_e2e_forged")
    status, body = post(local_stack, forged, secret="whsec_attacker")
    assert status == 400 and body["error"] == "invalid_signature"
    marker = stripe_event("charge.succeeded", id="ch_e2e_marker")
    post(local_stack, marker)
    eventually(lambda: get(local_stack, "/v1/objects/charge/ch_e2e_marker")[0] == 200)
    assert get(local_stack, "/v1/objects/charge/ch_e2e_forged")[0] == 404


def test_poison_message_ends_in_the_dead_letter_queue(local_stack: LocalStack) -> None:
    sqs = local_stack.client("sqs")
    sqs.send_message(QueueUrl=local_stack.outputs["events_queue_url"], MessageBody='{"poison": true}')

    def dead() -> list[dict[str, Any]]:
        found = sqs.receive_message(
            QueueUrl=local_stack.outputs["events_dead_letter_queue_url"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
        ).get("Messages", [])
        return [m for m in found if m["Body"] == '{"poison": true}']

    eventually(dead, timeout=60, interval=1)


def test_send_command_posts_the_billing_lifecycle(local_stack: LocalStack) -> None:
    result = local_stack.cli(
        "send", "--count", "1", "--start", "900", "--duplicates", "0.5", "--shuffle", "--seed", "3"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "21 deliveries of 14 unique events: 200 x 21" in result.stdout
    stored = eventually(
        lambda: (r := get(local_stack, "/v1/objects/subscription/sub_Local00900"))[0] == 200 and r[1]
    )
    eventually(lambda: get(local_stack, "/v1/objects/subscription/sub_Local00900")[1]["status"] == "active")
    assert stored["customer_id"] == "cus_Local00900"
    result = local_stack.cli("get", "customer", "cus_Local00900")
    assert result.returncode == 0 and json.loads(result.stdout)["object_id"] == "cus_Local00900"


def test_outputs_file_names_everything(local_stack: LocalStack) -> None:
    for key in (
        "webhook_url",
        "api_url",
        "aws_endpoint_url",
        "region",
        "event_bus_name",
        "table_name",
        "events_queue_url",
        "webhook_secret",
    ):
        assert local_stack.outputs[key], key
    assert local_stack.outputs["webhook_secret"].startswith("whsec_")


def test_a_busy_port_is_a_clear_error(local_stack: LocalStack, tmp_path: Any) -> None:
    port = local_stack.outputs["api_url"].rsplit(":", 1)[1]
    process = start_local(tmp_path, "--port", port)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 3
    assert f"port {port} on 127.0.0.1 is already in use" in output and "Traceback" not in output


def test_ctrl_c_stops_cleanly(tmp_path: Any) -> None:
    process = start_local(tmp_path, "--port", "0")
    eventually(lambda: (tmp_path / "outputs.json").exists() or process.poll() is not None, timeout=180)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "stopped." in output and "Traceback" not in output


def test_command_goes_through_the_gateway_to_stripe(local_stack: LocalStack) -> None:
    body = json.dumps(
        {
            "operation": "customers.create",
            "params": {
                "name": "Acme",
                "metadata": {"erp_id": "NS-4242", "crm_account_id": "001A00000abcDEF"},
            },
        }
    )
    request = urllib.request.Request(
        f"{local_stack.outputs['api_url']}/v1/commands",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        command_id = json.loads(response.read())["command_id"]
    record = eventually(
        lambda: (r := get(local_stack, f"/v1/commands/{command_id}"))[1].get("status") == "succeeded" and r[1]
    )
    assert record["result"]["name"] == "Acme" and record["attempts"] == 1
    posts = [r for r in local_stack.stripe.requests if r.method == "POST"]
    assert posts[-1].headers["authorization"] == "Bearer rk_test_e2e"
    assert posts[-1].headers["idempotency-key"] == f"stripe-middleware-{command_id}"


def test_command_put_on_the_bus_is_executed(local_stack: LocalStack) -> None:
    events = local_stack.client("events")
    detail = {
        "operation": "customers.update",
        "params": {"id": "cus_bus", "description": "from the bus"},
        "idempotency_key": "bus-producer-1",
    }
    local_stack.stripe.objects["/v1/customers/cus_bus"] = {"id": "cus_bus", "object": "customer"}
    events.put_events(
        Entries=[
            {
                "Source": "crm",
                "DetailType": "stripe-middleware.command",
                "Detail": json.dumps(detail),
                "EventBusName": local_stack.outputs["event_bus_name"],
            }
        ]
    )
    eventually(
        lambda: local_stack.stripe.objects["/v1/customers/cus_bus"].get("description") == "from the bus"
    )
    posts = [r for r in local_stack.stripe.requests if r.path == "/v1/customers/cus_bus"]
    assert posts[-1].headers["idempotency-key"] == "bus-producer-1"


def test_a_duplicate_charge_becomes_a_signal_on_the_bus_and_the_read_api(
    local_stack: LocalStack, subscriber: Any
) -> None:
    created = int(time.time()) - 120
    for n, at in enumerate((created, created + 45)):
        event = stripe_event(
            "charge.succeeded",
            created=at,
            id=f"ch_e2e_dup{n}",
            customer="cus_e2e_signals",
            amount=4200,
            status="succeeded",
        )
        event["data"]["object"]["created"] = at
        assert post(local_stack, event)[0] == 200
    [signal] = eventually(
        lambda: [p for p in subscriber() if p["detail-type"] == "stripe-middleware.signal.anomaly"]
    )
    assert signal["detail"]["kind"] == "duplicate_charge"
    assert signal["detail"]["evidence"]["object_ids"] == ["ch_e2e_dup0", "ch_e2e_dup1"]
    # A finding is recorded for the read API just after the bus took it.
    body = eventually(
        lambda: (r := get(local_stack, "/v1/customers/cus_e2e_signals/signals"))[1]["anomalies"] and r[1]
    )
    assert body["anomalies"] == [signal["detail"]]
    status, body = get(local_stack, "/v1/signals?kind=duplicate_charge")
    assert status == 200 and signal["detail"] in body["signals"]
