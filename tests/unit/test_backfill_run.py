"""`run_backfill` on an in-memory Stripe, store, bus, cursor store and poison sink."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from events import stripe_event, stripe_object
from stripe_middleware.backfill.options import BackfillOptions
from stripe_middleware.backfill.ports import BackfillFailedError, Cursor, StripeUnavailableError
from stripe_middleware.backfill.reading import MAX_ATTEMPTS, PAGE_SIZE, StripeReader
from stripe_middleware.backfill.run import (
    CLOCK_SKEW_MARGIN_SECONDS,
    Backfill,
    PublicationFailedError,
    run_backfill,
)
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.processing.models import StripeEvent
from stripe_middleware.processing.normalize import normalize
from stripe_middleware.shared.contract import DetailType
from stripe_middleware.shared.metadata_schema import load_metadata_schema
from tests.fakes.ports import (
    FakeClock,
    FakeCursorStore,
    FakePoisonSink,
    FakePublisher,
    FakeRateLimiter,
    FakeStore,
    FakeStripeLister,
    SimulatedCrash,
    resource_missing,
    stripe_failure,
)

NOW = 1_766_000_000
AS_OF = NOW - CLOCK_SKEW_MARGIN_SECONDS  # the snapshot time of a run started at NOW
CUSTOMERS, PAYMENT_METHODS = "/v1/customers", "/v1/customers/{}/payment_methods"
RATE_LIMITED = stripe_failure(429, type="invalid_request_error", code="rate_limit", rate_limited=True)
SERVER_ERROR = stripe_failure(500)
BAD_KEY = dataclasses.replace(
    stripe_failure(401, type="invalid_request_error"),
    message="Invalid API Key provided: rk_test_****wxyz",
)


def customer(n: int, *, created: int | None = None, **fields: Any) -> dict[str, Any]:
    # Three customers per second, so pages and cursors fall between objects created in the same second.
    return stripe_object("customer", id=f"cus_{n:04d}", created=created or NOW - 10_000 + n // 3, **fields)


def customers(count: int) -> list[dict[str, Any]]:
    return [customer(n) for n in range(count)]


def payment_method(n: int, customer_id: str, *, created: int | None = None) -> dict[str, Any]:
    return stripe_object("payment_method", id=f"pm_{n:04d}", customer=customer_id, created=created or NOW - n)


def ids(objects: list[dict[str, Any]]) -> set[str]:
    return {o["id"] for o in objects}


def options(*types: str, **request: Any) -> BackfillOptions:
    return BackfillOptions.from_request({"types": list(types), **request})


def read_limits(path: str) -> list[tuple[str, int]]:
    return load_gateway_config().rate_limit.read_limits(False, path)


@dataclass
class World:
    """Stripe and our side of a backfill; `run` starts or resumes a run as the backfill Lambda does."""

    stripe: FakeStripeLister = field(default_factory=FakeStripeLister)
    store: FakeStore = field(default_factory=FakeStore)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    cursors: FakeCursorStore = field(default_factory=FakeCursorStore)
    poison: FakePoisonSink = field(default_factory=FakePoisonSink)
    limiter: FakeRateLimiter = field(default_factory=FakeRateLimiter)
    clock: FakeClock = field(default_factory=lambda: FakeClock(NOW))
    waits: list[float] = field(default_factory=list)

    def run(self, request: BackfillOptions, *, pages: int | None = None) -> list[Cursor]:
        """Run until done, or for `pages` pages (each page takes a second of the fake clock)."""
        as_of = self.cursors.start_run(request.run_id, int(self.clock()) - CLOCK_SKEW_MARGIN_SECONDS)
        backfill = Backfill(
            reader=StripeReader(self.stripe, self.limiter, read_limits, sleep=self.waits.append),
            store=self.store,
            publisher=self.publisher,
            cursors=self.cursors,
            poison=self.poison,
            schema=load_metadata_schema(),
            livemode=False,
            run_id=request.run_id,
            as_of=as_of,
            clock=self.clock,
            on_page=lambda cursor: self.clock.advance(1),
        )
        deadline = self.clock.now + pages if pages is not None else None
        return run_backfill(request, backfill, deadline=deadline)

    def stored_ids(self, object_type: str, *, account: str | None = None) -> set[str]:
        return {key[1] for key in self.store.objects if key[0] == object_type and key[2] == account}

    def published_ids(self) -> list[str]:
        return [p.detail["object_id"] for p in self.publisher.published]

    def cursor(self, request: BackfillOptions, resource: str, account: str | None = None) -> Cursor:
        found = self.cursors.load(request.run_id, account, resource)
        assert found is not None
        return found


def uninterrupted(world: World, request: BackfillOptions) -> World:
    """The same run over the same Stripe objects, started at the same time, with nothing going wrong."""
    reference = World(stripe=FakeStripeLister(lists=copy.deepcopy(world.stripe.lists)))
    reference.run(request)
    return reference


@pytest.fixture
def world() -> World:
    return World()


def test_every_object_is_stored_once_and_published_as_backfilled(world: World) -> None:
    listed = {
        "/v1/customers": customers(2 * PAGE_SIZE + 50),
        "/v1/products": [stripe_object("product", id=f"prod_{n}", created=NOW - n) for n in range(3)],
        "/v1/prices": [stripe_object("price", id=f"price_{n}", created=NOW - n) for n in range(2)],
    }
    for path, objects in listed.items():
        world.stripe.add(path, *objects)
    everything = [o for objects in listed.values() for o in objects]

    cursors = world.run(options("customers", "products", "prices"))

    assert all(c.done for c in cursors) and len(cursors) == 3
    assert world.stored_ids("customer") == ids(listed["/v1/customers"])
    assert world.stored_ids("product") == ids(listed["/v1/products"])
    assert world.stored_ids("price") == ids(listed["/v1/prices"])
    assert len(world.store.writes) == len(everything)
    assert sorted(world.published_ids()) == sorted(ids(everything))
    assert {p.detail_type for p in world.publisher.published} == {"stripe-middleware.object.backfilled"}
    assert world.publisher.details() == []  # nothing on the bus looks like a Stripe event
    first = world.publisher.details(DetailType.OBJECT_BACKFILLED)[0]
    assert first["object"] == listed["/v1/customers"][-1]  # newest first
    assert first["run_id"] == options("customers", "products", "prices").run_id


def test_running_the_same_backfill_again_reads_nothing_and_changes_nothing(world: World) -> None:
    world.stripe.add(CUSTOMERS, *customers(150))
    world.run(options("customers"))
    store, published = dict(world.store.objects), list(world.publisher.published)
    calls = list(world.stripe.calls)

    cursors = world.run(options("customers"))

    assert all(c.done for c in cursors)
    assert world.store.objects == store and world.publisher.published == published
    assert world.stripe.calls == calls


def test_a_new_run_over_the_same_objects_writes_and_publishes_only_what_changed(world: World) -> None:
    world.stripe.add(CUSTOMERS, *customers(150))
    world.run(options("customers"))
    world.stripe.lists[(None, CUSTOMERS)][7]["email"] = "changed@example.com"
    world.publisher.published.clear()
    world.store.writes.clear()
    world.clock.advance(3600)

    cursors = world.run(options("customers", restart="again"))

    assert all(c.done for c in cursors) and cursors[0].objects == 150 and cursors[0].stored == 1
    assert world.published_ids() == ["cus_0007"]
    [write] = world.store.writes
    assert write.object["email"] == "changed@example.com"


def test_a_crash_before_a_cursor_is_saved_redoes_only_that_page(world: World) -> None:
    objects, request = customers(4 * PAGE_SIZE + 10), options("customers")
    world.stripe.add(CUSTOMERS, *objects)
    expected = uninterrupted(world, request)
    world.cursors.crash_before_save = 3  # page 3 stored and published, its cursor not saved

    with pytest.raises(SimulatedCrash):
        world.run(request)
    assert world.cursor(request, "customers").pages == 2
    world.run(request)

    assert world.store.objects == expected.store.objects
    assert len(world.stripe.calls) == len(expected.stripe.calls) + 1
    assert set(world.published_ids()) == ids(objects)
    assert len(world.published_ids()) == len(objects) + PAGE_SIZE  # page 3 published twice


def test_a_crash_in_the_middle_of_a_page_redoes_it_and_publishes_what_it_had_stored(world: World) -> None:
    objects, request = customers(3 * PAGE_SIZE), options("customers")
    world.stripe.add(CUSTOMERS, *objects)
    newest_first = sorted(objects, key=lambda o: (o["created"], o["id"]), reverse=True)
    world.store.crash_after_snapshot = {newest_first[PAGE_SIZE + 40]["id"]}  # page 2, stored, not published

    with pytest.raises(SimulatedCrash):
        world.run(request)
    assert world.cursor(request, "customers").pages == 1
    assert len(world.published_ids()) == PAGE_SIZE
    world.run(request)

    assert world.store.objects == uninterrupted(world, request).store.objects
    assert sorted(world.published_ids()) == sorted(ids(objects))  # each once: page 2 was never published


def test_an_unpublished_page_is_read_and_published_again(world: World) -> None:
    objects, request = customers(2 * PAGE_SIZE), options("customers")
    world.stripe.add(CUSTOMERS, *objects)
    world.publisher.fail_keys = {"customer/cus_0010"}  # on the second page (the oldest objects)

    with pytest.raises(PublicationFailedError):
        world.run(request)
    assert world.cursor(request, "customers").pages == 1
    world.publisher.fail_keys.clear()
    world.run(request)

    assert "cus_0010" in world.published_ids()
    assert world.store.objects == uninterrupted(world, request).store.objects


def test_rate_limited_answers_wait_and_do_not_use_up_the_attempts(world: World) -> None:
    objects = customers(2 * PAGE_SIZE + 1)
    world.stripe.add(CUSTOMERS, *objects)
    world.stripe.fail_after(1, *[RATE_LIMITED] * 20, *[SERVER_ERROR] * (MAX_ATTEMPTS - 1))

    cursors = world.run(options("customers"))

    assert cursors[0].done and world.stored_ids("customer") == ids(objects)
    assert len(world.waits) == 20 + MAX_ATTEMPTS - 1 and all(wait > 0 for wait in world.waits)


def test_server_errors_are_retried_until_stripe_answers(world: World) -> None:
    objects = customers(PAGE_SIZE + 1)
    world.stripe.add(CUSTOMERS, *objects)
    world.stripe.fail_after(1, *[SERVER_ERROR] * (MAX_ATTEMPTS - 1))

    cursors = world.run(options("customers"))

    assert cursors[0].done and world.stored_ids("customer") == ids(objects)


def test_a_stripe_outage_past_every_attempt_is_unavailable_with_the_cursor_at_the_last_stored_page(
    world: World,
) -> None:
    objects, request = customers(3 * PAGE_SIZE), options("customers")
    world.stripe.add(CUSTOMERS, *objects)
    world.stripe.fail_after(1, *[SERVER_ERROR] * MAX_ATTEMPTS)

    with pytest.raises(StripeUnavailableError, match=r"kept failing.*500"):
        world.run(request)

    cursor = world.cursor(request, "customers")
    assert cursor.pages == 1 and not cursor.done and len(world.stored_ids("customer")) == PAGE_SIZE
    assert cursor.starting_after == world.stripe.calls[1].starting_after
    assert len(world.stripe.calls) == 1 + MAX_ATTEMPTS
    world.run(request)
    assert world.stored_ids("customer") == ids(objects)


def test_a_refused_key_fails_the_run_with_stripes_message_and_nothing_more_is_written(world: World) -> None:
    world.stripe.add(CUSTOMERS, *customers(3 * PAGE_SIZE))
    world.stripe.fail_after(1, BAD_KEY)
    request = options("customers")

    with pytest.raises(BackfillFailedError, match=r"401.*Invalid API Key provided: rk_test_\*\*\*\*wxyz"):
        world.run(request)

    assert len(world.stripe.calls) == 2  # not retried
    assert len(world.stored_ids("customer")) == len(world.published_ids()) == PAGE_SIZE
    assert world.cursor(request, "customers").pages == 1


def test_an_object_that_cannot_be_stored_goes_to_the_poison_sink_and_the_run_goes_on(world: World) -> None:
    objects = customers(2 * PAGE_SIZE)
    del objects[150]["object"]  # not a Stripe object
    world.store.too_large_ids = {"cus_0020"}
    world.stripe.add(CUSTOMERS, *objects)

    [cursor] = world.run(options("customers"))

    assert cursor.done and cursor.poison == 2
    assert world.stored_ids("customer") == ids(objects) - {"cus_0150", "cus_0020"}
    reasons = {r["object_id"]: r["reason"] for r in world.poison.records}
    assert reasons.keys() == {"cus_0150", "cus_0020"}
    assert "not a Stripe object" in reasons["cus_0150"] and "ObjectTooLargeError" in reasons["cus_0020"]
    for record in world.poison.records:
        assert record["resource"] == "customers" and record["object"]["id"] == record["object_id"]


def test_when_the_cursors_object_is_deleted_the_run_goes_on_by_created_time(world: World) -> None:
    objects, request = customers(3 * PAGE_SIZE), options("customers")
    world.stripe.add(CUSTOMERS, *objects)
    world.run(request, pages=1)
    cursor = world.cursor(request, "customers")
    assert cursor.starting_after is not None
    world.stripe.delete(CUSTOMERS, cursor.starting_after)
    read_before = len(world.stripe.calls)

    [cursor] = world.run(request)

    assert cursor.done and world.stored_ids("customer") == ids(objects)  # its second's others included
    assert set(world.published_ids()) == ids(objects)
    assert len(world.stripe.calls) - read_before == 3  # the 404, then the two pages left


def webhook(world: World, obj: dict[str, Any], created: int) -> bool:
    """Store `obj` as the processor does for a webhook created at `created`; True if it was applied."""
    event = stripe_event("customer.updated", obj=obj, event_id=f"evt_at_{created}", created=created)
    stored = normalize(StripeEvent.model_validate(event), load_metadata_schema())
    return world.store.upsert_if_newer(stored).applied


def test_a_newer_webhook_state_is_never_overwritten_by_the_snapshot(world: World) -> None:
    listed = customer(1, email="listed@example.com")
    world.stripe.add(CUSTOMERS, listed)
    assert webhook(world, {**listed, "email": "newer@example.com"}, AS_OF + 30)

    world.run(options("customers"))

    stored = world.store.snapshot("customer", "cus_0001")
    assert stored is not None and stored.object["email"] == "newer@example.com"
    assert stored.event_id == f"evt_at_{AS_OF + 30}"


def test_after_a_snapshot_a_newer_webhook_wins_and_an_older_one_does_not(world: World) -> None:
    listed = customer(1, email="listed@example.com")
    world.stripe.add(CUSTOMERS, listed)
    world.run(options("customers"))

    assert not webhook(world, {**listed, "email": "older@example.com"}, AS_OF - 30)
    stored = world.store.snapshot("customer", "cus_0001")
    assert stored is not None and stored.object["email"] == "listed@example.com"
    assert webhook(world, {**listed, "email": "newer@example.com"}, AS_OF + 30)
    stored = world.store.snapshot("customer", "cus_0001")
    assert stored is not None and stored.object["email"] == "newer@example.com"


def test_only_objects_created_in_the_requested_range_are_backfilled(world: World) -> None:
    gte, lte = NOW - 990, NOW - 750
    world.stripe.add(CUSTOMERS, *(customer(n, created=NOW - 1000 + n) for n in range(300)))  # 10..250 in
    world.stripe.add(CUSTOMERS, customer(900, created=NOW - 100))  # out, but its payment methods are listed
    world.stripe.add(
        PAYMENT_METHODS.format("cus_0900"),
        payment_method(1, "cus_0900", created=gte - 1),
        payment_method(2, "cus_0900", created=gte),
        payment_method(3, "cus_0900", created=lte),
        payment_method(4, "cus_0900", created=lte + 1),
    )

    world.run(options("customers", "payment_methods", created_gte=gte, created_lte=lte))

    assert world.stored_ids("customer") == {f"cus_{n:04d}" for n in range(10, 251)}
    assert world.stored_ids("payment_method") == {"pm_0002", "pm_0003"}


def test_all_accounts_backfills_the_platform_and_every_connected_account(world: World) -> None:
    connected = ["acct_1Alpha", "acct_1Beta"]
    world.stripe.add("/v1/accounts", *(stripe_object("account", id=a, created=NOW - 5) for a in connected))
    world.stripe.add(CUSTOMERS, customer(1))
    world.stripe.add(CUSTOMERS, customer(2), customer(3), account="acct_1Alpha")
    world.stripe.add(CUSTOMERS, *customers(PAGE_SIZE + 5), account="acct_1Beta")

    cursors = world.run(options("customers", "accounts", accounts=["all"]))

    assert all(c.done for c in cursors)
    assert {(c.account, c.resource) for c in cursors} == {
        (None, "customers"),
        (None, "accounts"),
        ("acct_1Alpha", "customers"),
        ("acct_1Beta", "customers"),
    }
    assert world.stored_ids("customer") == {"cus_0001"}
    assert world.stored_ids("customer", account="acct_1Alpha") == {"cus_0002", "cus_0003"}
    assert world.stored_ids("customer", account="acct_1Beta") == ids(customers(PAGE_SIZE + 5))
    assert world.stored_ids("account") == set(connected)
    beta = [c for c in world.stripe.calls_to(CUSTOMERS) if c.stripe_account == "acct_1Beta"]
    assert len(beta) == 2


def test_payment_methods_are_listed_per_customer(world: World) -> None:
    owners = customers(PAGE_SIZE + 20)
    world.stripe.add(CUSTOMERS, *owners)
    methods = {
        "cus_0003": [payment_method(n, "cus_0003") for n in range(PAGE_SIZE + 30)],  # two pages
        "cus_0110": [payment_method(500, "cus_0110")],
    }
    for owner, listed in methods.items():
        world.stripe.add(PAYMENT_METHODS.format(owner), *listed)

    [cursor] = world.run(options("payment_methods"))

    assert cursor.done and cursor.objects == PAGE_SIZE + 31
    assert world.stored_ids("payment_method") == ids([m for listed in methods.values() for m in listed])
    assert world.stored_ids("customer") == set()  # the parents are read, not backfilled
    assert len(world.stripe.calls_to(PAYMENT_METHODS.format("cus_0003"))) == 2


def test_a_customer_deleted_before_its_payment_methods_are_listed_is_skipped(world: World) -> None:
    world.stripe.add(CUSTOMERS, *customers(3))
    for n, owner in enumerate(["cus_0000", "cus_0001", "cus_0002"]):
        world.stripe.add(PAYMENT_METHODS.format(owner), payment_method(n, owner))
    # customers, then cus_0002's payment methods, then cus_0001's: deleted in between
    world.stripe.fail_after(2, resource_missing("No such customer: 'cus_0001'"))

    [cursor] = world.run(options("payment_methods"))

    assert cursor.done and world.stored_ids("payment_method") == {"pm_0000", "pm_0002"}


def test_when_the_cursors_customer_is_deleted_payment_methods_go_on_from_its_created_time(
    world: World,
) -> None:
    owners, request = customers(3 * PAGE_SIZE), options("payment_methods")
    world.stripe.add(CUSTOMERS, *owners)
    for n, owner in enumerate(owners):
        world.stripe.add(PAYMENT_METHODS.format(owner["id"]), payment_method(n, owner["id"]))
    world.run(request, pages=1)
    cursor = world.cursor(request, "payment_methods")
    assert cursor.starting_after is not None
    world.stripe.delete(CUSTOMERS, cursor.starting_after)
    done_before = {c.path for c in world.stripe.calls if c.path != CUSTOMERS}
    read_before = len(world.stripe.calls)

    world.run(request)

    again = [c.path for c in world.stripe.calls[read_before:] if c.path in done_before]
    assert len(again) <= 2  # at most the other customers created in the deleted one's second
    assert world.stored_ids("payment_method") == {f"pm_{n:04d}" for n in range(len(owners))}


def test_every_stripe_call_first_takes_a_slot_of_the_read_share(world: World) -> None:
    world.stripe.add("/v1/accounts", stripe_object("account", id="acct_1Alpha"))
    world.stripe.add(CUSTOMERS, *customers(PAGE_SIZE + 1))
    world.stripe.add(PAYMENT_METHODS.format("cus_0001"), payment_method(1, "cus_0001"))
    world.stripe.fail_after(2, RATE_LIMITED, SERVER_ERROR)

    world.run(options("customers", "payment_methods", accounts=["all"]))

    assert world.limiter.requests == [read_limits(call.path) for call in world.stripe.calls]
    assert all(("test:read", 10) in keys for keys in world.limiter.requests)


def test_a_deadline_stops_the_run_and_the_next_call_finishes_it(world: World) -> None:
    request = options("customers", "products")
    world.stripe.add(CUSTOMERS, *customers(3 * PAGE_SIZE))
    world.stripe.add("/v1/products", stripe_object("product", id="prod_1"))
    expected = uninterrupted(world, request)

    stopped = world.run(request, pages=2)

    assert [(c.resource, c.done, c.pages) for c in stopped] == [("customers", False, 2)]
    finished = world.run(request)
    assert [(c.resource, c.done) for c in finished] == [("customers", True), ("products", True)]
    assert world.store.objects == expected.store.objects
    assert len(world.stripe.calls) == len(expected.stripe.calls)  # no page read twice
