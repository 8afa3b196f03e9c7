"""The backfill through its real adapters: moto for DynamoDB, SQS, EventBridge and Secrets Manager, the
real Stripe SDK over HTTP to the fake Stripe on loopback. The Lambda (one step of the state machine) runs
on in-process moto; `stripe-middleware backfill` runs against a local target, as local mode writes it
(outputs.json naming moto's server on loopback).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from jsonschema import Draft4Validator
from moto import mock_aws
from moto.server import ThreadedMotoServer

from events import detail_schema, stripe_event, stripe_object
from functions.backfill import handler as backfill_function
from functions.processor import handler as processor_function
from stripe_middleware.adapters.dynamodb.objects import ObjectStore
from stripe_middleware.backfill import reading
from stripe_middleware.backfill.options import BackfillOptions
from stripe_middleware.backfill.ports import Cursor, RetryLaterError
from stripe_middleware.backfill.resources import RESOURCES
from stripe_middleware.backfill.run import Backfill
from stripe_middleware.shared.clock import iso
from stripe_middleware.shared.contract import STRIPE_API_VERSION, DetailType
from stripe_middleware.shared.errors import RejectedError
from stripe_middleware_dev import cli, targets
from stripe_middleware_dev.tables import create_table_request
from tests.fakes.ports import FakeClock
from tests.fakes.stripe_server import FakeStripe, RecordedRequest, fake_stripe
from tests.integration.conftest import LambdaContext, ProcessorStack

KEY = "rk_test_backfill"  # the restricted read key the fake Stripe accepts
CREATED = 1_764_000_000
TYPES = ("customers", "products", "prices", "subscriptions", "invoices", "payment_methods")

pytestmark = pytest.mark.usefixtures("roomy_rate_limit")


# -- the stack ---------------------------------------------------------------------------------------


@dataclass
class HistoryStack:
    """What a backfill writes to (on moto), the fake Stripe it reads, and what a test looks at."""

    client: Callable[[str], Any]
    stripe: FakeStripe
    table_name: str
    bus_name: str
    capture_queue_url: str  # a rule sends everything published on the bus here
    dead_letter_queue_url: str  # the backfill DLQ
    events_queue_url: str
    api_key_secret_arn: str
    state_dir: Path | None = None  # where outputs.json is, for the CLI

    def stored(self, obj: dict[str, Any]) -> dict[str, Any]:
        found = ObjectStore(self.client("dynamodb"), self.table_name).get_object(obj["object"], obj["id"])
        assert len(found) == 1, found
        return found[0]

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=self.table_name)
        return {(i["pk"]["S"], i["sk"]["S"]): i for page in pages for i in page["Items"]}

    def object_items(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {key: item for key, item in self.items().items() if key[0].startswith("OBJ#")}

    def stored_ids(self) -> set[str]:
        return {pk.rsplit("#", 1)[-1] for pk, _ in self.object_items()}

    def cursors(self) -> dict[str, Cursor]:
        """The cursors saved by every run, by type (the tests make one run at a time)."""
        cursors = [
            Cursor(**json.loads(item["cursor"]["S"]))
            for (_, sk), item in self.items().items()
            if sk.startswith("CUR#")
        ]
        return {c.resource: c for c in cursors}

    def published(self) -> list[dict[str, Any]]:
        """Everything the bus received since the last look."""
        return [json.loads(body) for body in self._take(self.capture_queue_url)]

    def backfilled(self) -> list[dict[str, Any]]:
        """The `detail`s of the `object.backfilled` events the bus received since the last look."""
        return [e["detail"] for e in self.published() if e["detail-type"] == DetailType.OBJECT_BACKFILLED]

    def poisoned(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self._take(self.dead_letter_queue_url)]

    def _take(self, queue_url: str) -> list[str]:
        sqs, bodies = self.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies


def provision(client: Callable[[str], Any], stripe: FakeStripe) -> HistoryStack:
    """The table (as the stack defines it), the bus with a capture rule, the backfill's queues, the key."""
    dynamodb, sqs, events = client("dynamodb"), client("sqs"), client("events")
    dynamodb.create_table(**create_table_request("store"))
    events.create_event_bus(Name="bus")
    capture_url = sqs.create_queue(QueueName="capture")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["stripe-middleware"]})
    )
    events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "capture", "Arn": capture_arn}])
    secret = client("secretsmanager").create_secret(Name="stripe-read-key", SecretString=KEY)
    return HistoryStack(
        client=client,
        stripe=stripe,
        table_name="store",
        bus_name="bus",
        capture_queue_url=capture_url,
        dead_letter_queue_url=sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"],
        events_queue_url=sqs.create_queue(QueueName="events")["QueueUrl"],
        api_key_secret_arn=secret["ARN"],
    )


@pytest.fixture(autouse=True)
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The attempts the reader backed off for; each wait is cut to 10 ms."""
    attempts: list[int] = []

    def brief(attempt: int) -> float:
        attempts.append(attempt)
        return 0.01

    monkeypatch.setattr(reading, "backoff", brief)
    return attempts


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    with fake_stripe() as server:
        server.api_key = KEY
        yield server


@pytest.fixture
def lambda_stack(stripe_api: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> Iterator[HistoryStack]:
    """The backfill (and processor) functions on in-process moto, configured as the stack does."""
    with mock_aws():
        stack = provision(boto3.client, stripe_api)
        environment = {
            "TABLE_NAME": stack.table_name,
            "EVENT_BUS_NAME": stack.bus_name,
            "STRIPE_API_VERSION": STRIPE_API_VERSION,
            "STRIPE_API_KEY_SECRET_ID": stack.api_key_secret_arn,
            "STRIPE_API_BASE": stripe_api.url,
            "BACKFILL_DLQ_URL": stack.dead_letter_queue_url,
            "EVENTS_QUEUE_URL": stack.events_queue_url,
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        backfill_function.dependencies.cache_clear()
        processor_function.dependencies.cache_clear()
        yield stack
        backfill_function.dependencies.cache_clear()
        processor_function.dependencies.cache_clear()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server on loopback, as local mode runs it (the CLI's boto3 clients name an endpoint)."""
    werkzeug = logging.getLogger("werkzeug")  # moto's server logs every AWS call
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    werkzeug.setLevel(level)


@pytest.fixture
def local_stack(
    moto_endpoint: str, stripe_api: FakeStripe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> HistoryStack:
    """A running local mode as the CLI finds it: outputs.json, STRIPE_API_KEY and STRIPE_API_BASE."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    outputs: dict[str, Any] = {"aws_endpoint_url": moto_endpoint, "region": "us-east-1"}
    stack = provision(targets.Target(outputs, local=True).client, stripe_api)
    stack.state_dir = tmp_path
    outputs |= {
        "table_name": stack.table_name,
        "event_bus_name": stack.bus_name,
        "backfill_dead_letter_queue_url": stack.dead_letter_queue_url,
        "events_queue_url": stack.events_queue_url,
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.setenv("STRIPE_API_BASE", stripe_api.url)
    return stack


# -- driving it --------------------------------------------------------------------------------------


class StepContext(LambdaContext):
    function_name = "backfill"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:backfill"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def step(options: dict[str, Any], *, remaining_ms: int = 900_000) -> dict[str, Any]:
    """One invocation of the backfill function, as the state machine makes it."""
    result: dict[str, Any] = backfill_function.handler({"options": options}, StepContext(remaining_ms))
    return result


def backfill_cli(stack: HistoryStack, *args: str) -> int:
    return cli.main(["--state-dir", str(stack.state_dir), "backfill", *args])


def put(stripe: FakeStripe, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
    stripe.objects[f"/v1/{collection}/{obj['id']}"] = obj
    return obj


def seed_business(stripe: FakeStripe) -> list[dict[str, Any]]:
    """Customers with their payment methods, the catalog, subscriptions and invoices: real Stripe
    objects (the bundled fixtures), each with its own id and `created`."""
    objects: list[dict[str, Any]] = []
    for n in range(3):
        customer = stripe_object(
            "customer",
            id=f"cus_B{n}",
            created=CREATED + n,
            email=f"buyer{n}@example.com",
            metadata={"erp_id": f" ns-100{n} ", "crm_account_id": f"001B0000000000{n}"},
        )
        objects.append(put(stripe, "customers", customer))
    for n in range(2):
        product = stripe_object("product", id=f"prod_B{n}", created=CREATED + 10 + n, name=f"Plan {n}")
        objects.append(put(stripe, "products", product))
        price = stripe_object(
            "price", id=f"price_B{n}", created=CREATED + 20 + n, product=product["id"], unit_amount=1000 * n
        )
        objects.append(put(stripe, "prices", price))
    for n, status in enumerate(("active", "canceled")):
        subscription = stripe_object(
            "subscription", id=f"sub_B{n}", created=CREATED + 30 + n, customer=f"cus_B{n}", status=status
        )
        objects.append(put(stripe, "subscriptions", subscription))
    for n, status in enumerate(("paid", "open")):
        invoice = stripe_object(
            "invoice",
            id=f"in_B{n}",
            created=CREATED + 40 + n,
            customer=f"cus_B{n}",
            status=status,
            amount_due=4200 + n,
        )
        objects.append(put(stripe, "invoices", invoice))
    for n, customer_id in enumerate(("cus_B0", "cus_B0", "cus_B1")):  # cus_B2 has none
        method = stripe_object(
            "payment_method", id=f"pm_B{n}", created=CREATED + 50 + n, customer=customer_id
        )
        objects.append(put(stripe, "payment_methods", method))
    return objects


def seed_customers(stripe: FakeStripe, count: int) -> list[dict[str, Any]]:
    """`count` customers, `cus_P000` the oldest, listed 4 a page: newest first, as Stripe lists them."""
    stripe.page_size = 4
    return [
        put(stripe, "customers", stripe_object("customer", id=f"cus_P{n:03d}", created=CREATED + n))
        for n in range(count)
    ]


def identities(objects: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((o["object"], o["id"]) for o in objects)


def published_identities(details: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((d["object_type"], d["object_id"]) for d in details)


def starting_after(object_id: str) -> Callable[[RecordedRequest], bool]:
    return lambda request: request.params.get("starting_after") == object_id


# -- the tests ---------------------------------------------------------------------------------------


def test_every_object_is_stored_with_stripes_values_and_published_once(lambda_stack: HistoryStack) -> None:
    objects = seed_business(lambda_stack.stripe)

    result = step({"types": list(TYPES)})

    assert result["done"] is True
    assert {p["type"]: (p["done"], p["objects"], p["stored"], p["poison"]) for p in result["progress"]} == {
        "customers": (True, 3, 3, 0),
        "products": (True, 2, 2, 0),
        "prices": (True, 2, 2, 0),
        "subscriptions": (True, 2, 2, 0),
        "invoices": (True, 2, 2, 0),
        "payment_methods": (True, 3, 3, 0),
    }
    for obj in objects:
        stored = lambda_stack.stored(obj)
        assert stored["object"] == obj  # Stripe's object, as Stripe sent it
        assert stored.get("customer_id") == (
            obj["id"] if obj["object"] == "customer" else obj.get("customer")
        )
        assert stored["created"] == iso(obj["created"])
        assert stored.get("status") == obj.get("status")
        assert (stored["account"], stored["livemode"]) == (None, False)
        assert (stored["event_type"], stored["event_id"]) == (DetailType.OBJECT_BACKFILLED, result["run_id"])
    assert lambda_stack.stored(objects[0])["metadata"] == {
        "erp_id": "NS-1000",
        "crm_account_id": "001B00000000000",
    }
    assert lambda_stack.stored({"object": "invoice", "id": "in_B1"})["amount"] == 4201

    details = lambda_stack.backfilled()
    assert published_identities(details) == identities(objects)  # one event per object, no more
    by_id = {o["id"]: o for o in objects}
    validator = Draft4Validator(detail_schema(DetailType.OBJECT_BACKFILLED))
    for detail in details:
        assert list(validator.iter_errors(detail)) == []
        assert detail["object"] == by_id[detail["object_id"]]
        assert detail["run_id"] == result["run_id"]
    assert lambda_stack.poisoned() == []
    requests = lambda_stack.stripe.requests
    assert {(r.params["limit"], r.headers["stripe-version"]) for r in requests} == {
        ("100", STRIPE_API_VERSION)
    }
    assert [r.params.get("status") for r in lambda_stack.stripe.gets("/v1/subscriptions")] == ["all"]
    assert {r.path for r in requests if r.path.endswith("/payment_methods")} == {
        f"/v1/customers/cus_B{n}/payment_methods" for n in range(3)
    }


def test_running_again_publishes_nothing_and_changes_no_item(
    local_stack: HistoryStack, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = seed_business(local_stack.stripe)
    types = ",".join(TYPES)
    assert backfill_cli(local_stack, "--types", types) == 0
    assert f"done: {len(objects)} objects read, {len(objects)} new or changed" in capsys.readouterr().out
    assert published_identities(local_stack.backfilled()) == identities(objects)
    items = local_stack.object_items()
    assert len(items) == len(objects)

    assert backfill_cli(local_stack, "--types", types, "--restart") == 0  # a new run: every page again

    assert f"done: {len(objects)} objects read, 0 new or changed" in capsys.readouterr().out
    assert len(local_stack.stripe.gets("/v1/customers")) == 4  # 2 runs x (customers + payment methods)
    assert local_stack.backfilled() == []
    assert local_stack.object_items() == items  # not one attribute rewritten (`stored_at` included)

    # Without --restart the same command is the first run again: finished, it asks Stripe nothing.
    read_before = len(local_stack.stripe.requests)
    assert backfill_cli(local_stack, "--types", types) == 0
    assert len(local_stack.stripe.requests) == read_before
    assert local_stack.backfilled() == []
    assert local_stack.object_items() == items


def test_a_step_stops_at_its_deadline_and_the_next_reads_only_what_is_left(
    lambda_stack: HistoryStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = [o for o in seed_business(lambda_stack.stripe) if o["object"] != "payment_method"]
    types = ["customers", "products", "prices", "subscriptions", "invoices"]
    deadline_in_ms = 500  # the step's deadline; Lambda's timeout is DEADLINE_MARGIN_SECONDS later
    history = backfill_function.dependencies()
    start_run = history.backfill

    def run_whose_products_page_takes_30_seconds(options: BackfillOptions, now: float) -> Backfill:
        # The step's clock stands still but for the products page, which takes 30 s: past the step's
        # deadline, yet before Lambda's timeout. So the deadline passes exactly while products are read.
        backfill = start_run(options, now)
        clock = backfill.clock = FakeClock(now)
        backfill.on_page = lambda cursor: clock.advance(30) if cursor.resource == "products" else None
        return backfill

    with monkeypatch.context() as patched:
        patched.setattr(history, "backfill", run_whose_products_page_takes_30_seconds)
        first = step(
            {"types": types}, remaining_ms=backfill_function.DEADLINE_MARGIN_SECONDS * 1000 + deadline_in_ms
        )

    assert first["done"] is False
    assert [(p["type"], p["done"], p["pages"]) for p in first["progress"]] == [
        ("customers", True, 1),
        ("products", True, 1),
        ("prices", False, 0),
    ]
    assert [r.path for r in lambda_stack.stripe.requests] == ["/v1/customers", "/v1/products"]

    second = step(first["options"])  # the real clock, and 15 minutes

    assert second["done"] is True and second["run_id"] == first["run_id"]
    assert [r.path for r in lambda_stack.stripe.requests[2:]] == [
        "/v1/prices",
        "/v1/subscriptions",
        "/v1/invoices",
    ]  # finished types are not read again
    assert [(p["type"], p["done"]) for p in second["progress"]] == [(t, True) for t in types]
    assert lambda_stack.stored_ids() == {o["id"] for o in objects}
    assert published_identities(lambda_stack.backfilled()) == identities(objects)


def test_429s_and_5xx_mid_run_are_retried_and_no_page_is_lost(
    local_stack: HistoryStack, capsys: pytest.CaptureFixture[str], backoffs: list[int]
) -> None:
    stripe = local_stack.stripe
    customers = seed_customers(stripe, 10)  # pages: cus_P009..P006, P005..P002, P001..P000
    products = [
        put(stripe, "products", stripe_object("product", id=f"prod_P{n}", created=CREATED)) for n in "ab"
    ]
    stripe.fail_when(starting_after("cus_P006"), 429, 500, 503, "lock_timeout")  # the second page, 4 times

    assert backfill_cli(local_stack, "--types", "customers,products") == 0

    assert [(r.path, r.params.get("starting_after"), r.status) for r in stripe.requests] == [
        ("/v1/customers", None, 200),
        *[("/v1/customers", "cus_P006", status) for status in (429, 500, 503, 409, 200)],
        ("/v1/customers", "cus_P002", 200),
        ("/v1/products", None, 200),
    ]  # three customer pages and one of products: each answered once
    assert "4 Stripe retries" in capsys.readouterr().out
    # Every retry waited first: the 429 on its own count (it uses no attempt), then attempts 1, 2, 3.
    assert backoffs == [1, 1, 2, 3]
    assert local_stack.stored_ids() == {o["id"] for o in customers + products}
    assert published_identities(local_stack.backfilled()) == identities(customers + products)
    cursor = local_stack.cursors()["customers"]
    assert (cursor.pages, cursor.objects, cursor.done) == (3, 10, True)


def test_a_wrong_key_exits_non_zero_with_stripes_reason_and_writes_nothing(
    local_stack: HistoryStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_business(local_stack.stripe)
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_revoked")

    assert backfill_cli(local_stack, "--types", ",".join(TYPES)) == 1

    error = capsys.readouterr().err
    assert "Stripe refused GET /v1/customers (401 invalid_request_error)" in error
    assert "Invalid API Key provided" in error
    assert [r.status for r in local_stack.stripe.requests] == [401]  # not retried, nothing else tried
    assert local_stack.object_items() == {}
    assert local_stack.cursors() == {}
    assert local_stack.published() == []
    assert local_stack.poisoned() == []


def test_a_key_expiring_mid_run_leaves_whole_pages_only_and_the_rerun_resumes_after_them(
    local_stack: HistoryStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stripe = local_stack.stripe
    customers = seed_customers(stripe, 10)  # pages: cus_P009..P006, P005..P002, P001..P000
    product = put(stripe, "products", stripe_object("product", id="prod_E", created=CREATED))
    stripe.fail_when(starting_after("cus_P006"), "api_key_expired")  # the second page of customers
    first_page = customers[6:]

    assert backfill_cli(local_stack, "--types", "customers,products") == 1

    error = capsys.readouterr().err
    assert "401 invalid_request_error/api_key_expired" in error and "run again to resume" in error
    assert local_stack.stored_ids() == {c["id"] for c in first_page}
    assert published_identities(local_stack.backfilled()) == identities(first_page)  # stored, then published
    cursors = local_stack.cursors()
    assert set(cursors) == {"customers"}  # products never started
    assert (cursors["customers"].starting_after, cursors["customers"].pages, cursors["customers"].done) == (
        "cus_P006",
        1,
        False,
    )
    assert stripe.gets("/v1/products") == []

    read_before = len(stripe.requests)
    assert backfill_cli(local_stack, "--types", "customers,products") == 0  # the key renewed

    assert [(r.path, r.params.get("starting_after")) for r in stripe.requests[read_before:]] == [
        ("/v1/customers", "cus_P006"),
        ("/v1/customers", "cus_P002"),
        ("/v1/products", None),
    ]
    assert local_stack.stored_ids() == {o["id"] for o in [*customers, product]}
    assert published_identities(local_stack.backfilled()) == identities([*customers[:6], product])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(
            stripe_object("customer", id="cus_Xms", created=CREATED * 1000), "ValueError", id="created_in_ms"
        ),
        pytest.param(
            {
                k: v
                for k, v in stripe_object("customer", id="cus_Xtype", created=CREATED).items()
                if k != "object"
            },
            "ValueError: not a Stripe object",
            id="no_object_type",
        ),
        # Beyond the platform's time_t (an OverflowError or OSError): recorded as a ValueError too.
        pytest.param(
            stripe_object("customer", id="cus_Xns", created=CREATED * 10**9),
            f"ValueError: timestamp {CREATED * 10**9} is out of range",
            id="created_in_ns",
        ),
    ],
)
def test_an_object_the_normalizer_cannot_take_goes_to_the_dlq_and_the_run_goes_on(
    lambda_stack: HistoryStack, bad: dict[str, Any], reason: str
) -> None:
    stripe = lambda_stack.stripe
    good = [
        put(stripe, "customers", stripe_object("customer", id=f"cus_G{n}", created=CREATED + n))
        for n in range(3)
    ]
    put(stripe, "customers", bad)
    product = put(stripe, "products", stripe_object("product", id="prod_G", created=CREATED))

    result = step({"types": ["customers", "products"]})

    assert result["done"] is True
    customers = next(p for p in result["progress"] if p["type"] == "customers")
    assert (customers["objects"], customers["stored"], customers["poison"]) == (4, 3, 1)
    [poisoned] = lambda_stack.poisoned()
    assert poisoned["object_id"] == bad["id"]
    assert (poisoned["kind"], poisoned["run_id"], poisoned["resource"]) == (
        "backfill_poison",
        result["run_id"],
        "customers",
    )
    assert poisoned["reason"].startswith(reason) and poisoned["object"] == bad
    assert lambda_stack.stored_ids() == {o["id"] for o in [*good, product]}
    assert published_identities(lambda_stack.backfilled()) == identities([*good, product])


def test_an_unknown_type_exits_non_zero_and_lists_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--state-dir", str(tmp_path), "backfill", "--types", "customer,invoicez"])

    assert code not in (0, None)
    error = capsys.readouterr().err
    assert "unknown type customer, invoicez" in error
    assert f"valid types: {', '.join(RESOURCES)}" in error
    assert not (tmp_path / "outputs.json").exists()  # refused before looking for a target


def test_an_outage_fails_the_step_with_the_one_error_the_state_machine_retries(
    lambda_stack: HistoryStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = seed_customers(lambda_stack.stripe, 6)  # two pages
    lambda_stack.stripe.fail_when(starting_after("cus_P002"), *[500] * reading.MAX_ATTEMPTS)

    with pytest.raises(
        RetryLaterError, match=r"stripe_unavailable: Stripe kept failing GET /v1/customers \(500"
    ):
        step({"types": ["customers"]})
    assert len(lambda_stack.stored_ids()) == 4  # the first page, and its cursor

    client = backfill_function.dependencies().store._client

    def throttled(**kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "-"}}, "PutItem"
        )

    with monkeypatch.context() as patched:
        patched.setattr(client, "put_item", throttled)
        with pytest.raises(RetryLaterError, match="store_unavailable"):
            step({"types": ["customers"]})

    assert step({"types": ["customers"]})["done"] is True  # the retry resumes after the first page
    assert lambda_stack.stored_ids() == {c["id"] for c in customers}
    assert published_identities(lambda_stack.backfilled()) == identities(customers)


def test_an_unknown_type_fails_the_step_with_the_valid_ones(lambda_stack: HistoryStack) -> None:
    with pytest.raises(RejectedError, match=r"unknown type invoicez; valid types: accounts, customers"):
        step({"types": ["customers", "invoicez"]})
    assert lambda_stack.stripe.requests == []


def test_a_newer_webhook_state_survives_a_backfill_of_an_older_snapshot(lambda_stack: HistoryStack) -> None:
    stripe, now = lambda_stack.stripe, int(time.time())
    updated = put(stripe, "customers", stripe_object("customer", id="cus_W1", name="Listed", created=CREATED))
    stale = put(
        stripe, "customers", stripe_object("customer", id="cus_W2", name="Listed", created=CREATED + 1)
    )
    processor = ProcessorStack(
        lambda_stack.client("dynamodb"),
        lambda_stack.client("sqs"),
        lambda_stack.client("events"),
        lambda_stack.table_name,
        lambda_stack.bus_name,
        lambda_stack.capture_queue_url,
    )
    failed = processor.deliver(
        # Just before the run starts, yet after its snapshots' `as_of` (the clock-skew margin).
        stripe_event("customer.updated", obj={**updated, "name": "Renamed"}, created=now - 10),
        stripe_event("customer.updated", obj={**stale, "name": "Long ago"}, created=now - 3600),
    )
    assert failed == []
    lambda_stack.published()

    step({"types": ["customers"]})

    kept = lambda_stack.stored(updated)
    assert (kept["object"]["name"], kept["event_type"]) == ("Renamed", "customer.updated")
    overwritten = lambda_stack.stored(stale)
    assert (overwritten["object"], overwritten["event_type"]) == (stale, DetailType.OBJECT_BACKFILLED)
    assert published_identities(lambda_stack.backfilled()) == identities([stale])
