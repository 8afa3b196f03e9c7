"""One in-memory fake per port, shared by unit and integration tests.

Each fake is a small honest implementation of its Protocol with the semantics of the real adapter
(the order guard, first-writer-wins creates, Stripe's idempotency replays), plus public switches that
inject the failures the adapter can raise. The recorded state (`events`, `published`, `calls` ...) is
what tests assert on.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.backfill.ports import Cursor, Page
from stripe_middleware.commands.models import Command
from stripe_middleware.commands.ports import NotQueuedError
from stripe_middleware.ingest.ports import NotDurableError, QueuedEvent
from stripe_middleware.processing.models import StoredObject, StripeEvent
from stripe_middleware.processing.ports import ObjectTooLargeError, UpsertResult
from stripe_middleware.shared.errors import SecretUnavailableError, StoreUnavailableError, UnavailableError
from stripe_middleware.shared.publishing import Publication
from stripe_middleware.shared.stripe_calls import StripeCallError, StripeFailure


class SimulatedCrash(Exception):
    """The process died at this point (Lambda timeout, out of memory): nothing after it ran."""


# -- ingest ----------------------------------------------------------------------------------------
@dataclass
class FakeEventQueue:
    """`ingest.ports.EventQueue`: keeps what was enqueued; `fail` refuses like an SQS outage."""

    events: list[QueuedEvent] = field(default_factory=list)
    fail: bool = False

    def enqueue(self, event: QueuedEvent) -> str:
        if self.fail:
            raise NotDurableError("fake events queue refused the message")
        self.events.append(event)
        return f"msg-{len(self.events)}"


@dataclass
class FakeSigningSecrets:
    """`ingest.ports.SigningSecrets`: secret id -> active secrets (current, then previous)."""

    secrets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fail: bool = False

    def get(self, secret_id: str) -> tuple[str, ...]:
        if self.fail:
            raise SecretUnavailableError("fake Secrets Manager is unavailable")
        found = self.secrets.get(secret_id)
        if not found:  # unknown or empty, as the adapter treats an empty secret
            raise SecretUnavailableError(f"no signing secret {secret_id}")
        return found

    def refreshed(self, secret_id: str) -> tuple[str, ...] | None:
        return None  # the fake's secrets are never cached stale


# -- processing and read ---------------------------------------------------------------------------
StoreKey = tuple[str, str, str | None, bool]  # object type, object id, account (None: platform), livemode


def _scope(account: str | None, livemode: bool) -> str:
    """The adapter's sort key for one variant of an object (`platform#test`, `acct_1#live`)."""
    return f"{account or 'platform'}#{'live' if livemode else 'test'}"


@dataclass
class FakeStore:
    """`processing.ports.Store`, `read.ports.ReadStore` and `backfill.ports.SnapshotStore`, with
    ObjectStore's order guard.

    Failure switches:
    - `unavailable`: operation names ("seen_events", "upsert", "upsert_snapshot", "record_events",
      "get_object", "customer_objects") that raise StoreUnavailableError on every call;
    - `unavailable_ids` / `too_large_ids`: object ids whose upsert raises StoreUnavailableError /
      ObjectTooLargeError, before anything is written;
    - `crash_after_upsert`: event ids whose write is applied and then the process "dies"
      (SimulatedCrash, once per id): a crash between the store and the publication;
      `crash_after_snapshot` does the same for a backfill's snapshot of those object ids.
    """

    objects: dict[StoreKey, StoredObject] = field(default_factory=dict)
    stored_at: dict[StoreKey, int] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)  # de-duplication records
    writes: list[StoredObject] = field(default_factory=list)  # every applied write, in order
    unavailable: set[str] = field(default_factory=set)
    unavailable_ids: set[str] = field(default_factory=set)
    too_large_ids: set[str] = field(default_factory=set)
    crash_after_upsert: set[str] = field(default_factory=set)
    crash_after_snapshot: set[str] = field(default_factory=set)  # object ids, as crash_after_upsert

    def _check(self, operation: str) -> None:
        if operation in self.unavailable:
            raise StoreUnavailableError(f"fake store: {operation} is unavailable")

    # -- processing.ports.Store
    def seen_events(self, event_ids: Sequence[str]) -> set[str]:
        self._check("seen_events")
        return {event_id for event_id in event_ids if event_id in self.events}

    def upsert_if_newer(self, stored: StoredObject) -> UpsertResult:
        """Write unless the stored snapshot's order key is greater or equal; return the previous key."""
        self._check("upsert")
        if stored.object_id in self.unavailable_ids:
            raise StoreUnavailableError(f"fake store: upsert of {stored.object_id} is unavailable")
        if stored.object_id in self.too_large_ids:
            raise ObjectTooLargeError(f"{stored.object_type} {stored.object_id}: too large")
        key = (stored.object_type, stored.object_id, stored.account, stored.livemode)
        previous = self.objects.get(key)
        previous_key = previous.order_key if previous is not None else None
        if previous_key is not None and previous_key >= stored.order_key:
            return UpsertResult(applied=False, previous_order_key=previous_key)
        self.objects[key] = stored.model_copy(deep=True)
        self.stored_at[key] = int(time.time())
        self.writes.append(stored)
        if stored.event_id in self.crash_after_upsert:
            self.crash_after_upsert.discard(stored.event_id)
            raise SimulatedCrash(f"crashed after storing {stored.event_id}")
        return UpsertResult(applied=True, previous_order_key=previous_key)

    # -- backfill.ports.SnapshotStore
    def upsert_snapshot(self, stored: StoredObject) -> UpsertResult:
        """As ObjectStore.upsert_snapshot: the order guard, and no write when the content is the same."""
        self._check("upsert_snapshot")
        if stored.object_id in self.unavailable_ids:
            raise StoreUnavailableError(f"fake store: upsert of {stored.object_id} is unavailable")
        if stored.object_id in self.too_large_ids:
            raise ObjectTooLargeError(f"{stored.object_type} {stored.object_id}: too large")
        key = (stored.object_type, stored.object_id, stored.account, stored.livemode)
        previous = self.objects.get(key)
        previous_key = previous.order_key if previous is not None else None
        if previous is not None and (
            previous.order_key >= stored.order_key or previous.object == stored.object  # same content hash
        ):
            return UpsertResult(applied=False, previous_order_key=previous_key)
        self.objects[key] = stored.model_copy(deep=True)
        self.stored_at[key] = int(time.time())
        self.writes.append(stored)
        if stored.object_id in self.crash_after_snapshot:
            self.crash_after_snapshot.discard(stored.object_id)
            raise SimulatedCrash(f"crashed after storing the snapshot of {stored.object_id}")
        return UpsertResult(applied=True, previous_order_key=previous_key)

    def record_events(self, event_ids: Sequence[str]) -> None:
        self._check("record_events")
        self.events.update(event_ids)

    # -- read.ports.ReadStore
    def get_object(
        self, object_type: str, object_id: str, *, account: str | None = None, livemode: bool | None = None
    ) -> list[dict[str, Any]]:
        self._check("get_object")
        variants = sorted(
            (key for key in self.objects if key[:2] == (object_type, object_id)),
            key=lambda key: _scope(key[2], key[3]),
        )
        return [
            self._public(key)
            for key in variants
            if (account is None or key[2] == account) and (livemode is None or key[3] == livemode)
        ]

    def customer_objects(
        self,
        customer_id: str,
        *,
        account: str | None,
        livemode: bool,
        object_type: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        self._check("customer_objects")
        found = [
            (f"{stored.object_type}#{stored.created or stored.event_created}#{stored.object_id}", key)
            for key, stored in self.objects.items()
            if stored.customer_id == customer_id
            and _scope(stored.account, stored.livemode) == _scope(account, livemode)
            and (object_type is None or stored.object_type == object_type)
        ]
        return [self._public(key) for _, key in sorted(found)[:limit]]

    def _public(self, key: StoreKey) -> dict[str, Any]:
        """As ObjectStore._public: normalized attributes minus empty ones, `object`; platform account None."""
        stored = self.objects[key]
        values = {
            name: value
            for name, value in stored.model_dump(exclude={"object", "order_key"}).items()
            if value is not None and value != ""
        }
        values["account"] = stored.account
        values["stored_at"] = self.stored_at[key]
        values["object"] = json.loads(json.dumps(stored.object))
        return values

    # -- for tests
    def snapshot(
        self, object_type: str, object_id: str, *, account: str | None = None, livemode: bool = False
    ) -> StoredObject | None:
        return self.objects.get((object_type, object_id, account, livemode))


@dataclass
class FakeRefetch:
    """`processing.ports.Refetch`: Stripe's current objects by (type, id); None for the unknown."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (event id, object type, object id)

    def __call__(self, event: StripeEvent, object_type: str, object_id: str) -> dict[str, Any] | None:
        self.calls.append((event.id, object_type, object_id))
        found = self.objects.get((object_type, object_id))
        return copy.deepcopy(found) if found is not None else None


# -- shared ----------------------------------------------------------------------------------------
@dataclass
class FakePublisher:
    """`shared.publishing.Publisher`: the bus as subscribers see it (details JSON round-tripped).

    `fail_keys` fails the publications of those keys (a partial PutEvents failure); `fail_all` fails all.
    """

    published: list[Publication] = field(default_factory=list)
    fail_keys: set[str] = field(default_factory=set)
    fail_all: bool = False

    def publish(self, publications: Sequence[Publication]) -> set[str]:
        failed = {p.key for p in publications if self.fail_all or p.key in self.fail_keys}
        self.published.extend(
            Publication(p.key, str(p.detail_type), json.loads(json.dumps(p.detail, default=str)))
            for p in publications
            if p.key not in failed
        )
        return failed

    def details(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Details of one detail-type, or of every Stripe event (not the middleware's own signals)."""
        return [
            p.detail
            for p in self.published
            if p.detail_type == detail_type
            or (detail_type is None and not p.detail_type.startswith("stripe-middleware."))
        ]


# -- commands --------------------------------------------------------------------------------------
def _stored_copy(command: Command) -> Command:
    """What a JSON store gives back: a separate copy, never the caller's object."""
    return Command.model_validate_json(command.model_dump_json())


@dataclass
class FakeCommandStore:
    """`commands.ports.CommandStore`; `unavailable` names operations ("create", "save", "get") that fail."""

    commands: dict[str, Command] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)

    def _check(self, operation: str) -> None:
        if operation in self.unavailable:
            raise StoreUnavailableError(f"fake command store: {operation} is unavailable")

    def create(self, command: Command) -> Command:
        self._check("create")
        existing = self.commands.get(command.command_id)
        if existing is not None:
            return _stored_copy(existing)
        self.commands[command.command_id] = _stored_copy(command)
        return command

    def save(self, command: Command) -> None:
        self._check("save")
        self.commands[command.command_id] = _stored_copy(command)

    def get(self, command_id: str) -> Command | None:
        self._check("get")
        found = self.commands.get(command_id)
        return _stored_copy(found) if found is not None else None


@dataclass
class FakeCommandQueue:
    """`commands.ports.CommandQueue`: keeps the message bodies; `fail` refuses like an SQS outage."""

    messages: list[str] = field(default_factory=list)
    fail: bool = False

    def send(self, body: str) -> None:
        if self.fail:
            raise NotQueuedError("fake commands queue refused the message")
        self.messages.append(body)

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.messages]


@dataclass
class FakeRateLimiter:
    """`commands.ports.RateLimiter`: grants every slot unless `full`; `unavailable` is a store outage."""

    full: bool = False
    unavailable: bool = False
    requests: list[list[tuple[str, int]]] = field(default_factory=list)  # every acquire, granted or not

    def acquire(self, limits: Sequence[tuple[str, int]], *, max_wait: float = 10.0) -> bool:
        if self.unavailable:
            raise StoreUnavailableError("fake rate limiter: the store is unavailable")
        self.requests.append(list(limits))
        return not self.full


@dataclass(frozen=True)
class StripeCall:
    path: str
    params: dict[str, Any]
    idempotency_key: str
    stripe_account: str | None
    method: str = "post"


def stripe_failure(
    http_status: int | None,
    *,
    type: str = "api_error",
    code: str | None = None,
    should_retry: bool | None = None,
    rate_limited: bool = False,
    network: bool = False,
) -> StripeFailure:
    """A StripeFailure as the SDK adapter builds it, for `FakeStripeWriter.fail_next`."""
    return StripeFailure(
        type=type,
        code=code,
        message=f"injected {http_status or 'network'} failure",
        http_status=http_status,
        request_id=f"req_fake{secrets.token_hex(4)}",
        should_retry=should_retry,
        rate_limited=rate_limited,
        network=network,
    )


_PREFIXES = {"customers": "cus", "refunds": "re", "payment_intents": "pi", "subscriptions": "sub"}


@dataclass
class FakeStripeWriter:
    """`commands.ports.StripeWriter` over in-memory objects keyed by path (`/v1/customers/cus_1`).

    A POST to a list path creates an object, to an object path updates it (`.../pay` pays an invoice);
    a repeated idempotency key replays the first answer without acting again, as Stripe does.
    `fail_next` answers the next calls with those failures; like 429s, lock timeouts and network errors,
    they are not saved under the idempotency key.
    """

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[StripeCall] = field(default_factory=list)  # every call, replays and failures included
    created: list[str] = field(default_factory=list)  # ids of objects really created (not replays)
    fail_next: list[StripeFailure] = field(default_factory=list)
    replays: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> first answer

    def post(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        self.calls.append(StripeCall(path, copy.deepcopy(params), idempotency_key, stripe_account))
        if self.fail_next:
            raise StripeCallError(self.fail_next.pop(0))
        if idempotency_key not in self.replays:
            self.replays[idempotency_key] = self._act(path, params)
        return copy.deepcopy(self.replays[idempotency_key])

    def delete(
        self, path: str, params: dict[str, Any], *, idempotency_key: str, stripe_account: str | None
    ) -> dict[str, Any]:
        """A subscription's cancel: `status` becomes canceled; Stripe keeps no idempotency keys for DELETE."""
        self.calls.append(StripeCall(path, copy.deepcopy(params), idempotency_key, stripe_account, "delete"))
        if self.fail_next:
            raise StripeCallError(self.fail_next.pop(0))
        found = self.objects.get(path)
        if found is None:
            raise StripeCallError(stripe_failure(404, type="invalid_request_error", code="resource_missing"))
        found["status"] = "canceled"
        return copy.deepcopy(found)

    def _act(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")  # v1, resource, [id], [action]
        if len(parts) == 2:
            resource = parts[1]
            object_id = f"{_PREFIXES.get(resource, 'obj')}_{secrets.token_hex(7)}"
            obj = {"id": object_id, "object": resource.removesuffix("s"), **copy.deepcopy(params)}
            self.objects[f"/v1/{resource}/{object_id}"] = obj
            self.created.append(object_id)
            return copy.deepcopy(obj)
        found = self.objects.get("/" + "/".join(parts[:3]))
        if found is None:
            missing = stripe_failure(404, type="invalid_request_error", code="resource_missing")
            raise StripeCallError(missing)
        if parts[3:] == ["pay"]:
            found["status"] = "paid"
        elif parts[3:] == ["mark_uncollectible"]:
            found["status"] = "uncollectible"
        else:
            found.update(copy.deepcopy(params))
        return copy.deepcopy(found)


# -- backfill and catch-up -------------------------------------------------------------------------
@dataclass
class FakeClock:
    """A clock that stands still until a test (or a progress hook) moves it."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def resource_missing(message: str) -> StripeFailure:
    """Stripe's 404 for an id it does not know (any more), as the SDK adapter builds it."""
    return StripeFailure(
        type="invalid_request_error",
        code="resource_missing",
        message=message,
        http_status=404,
        request_id=f"req_fake{secrets.token_hex(4)}",
    )


@dataclass(frozen=True)
class ListCall:
    path: str
    params: dict[str, Any]
    starting_after: str | None
    stripe_account: str | None


@dataclass
class FakeStripeLister:
    """`backfill.ports.StripeLister` over in-memory lists, one per (Stripe-Account, path); None: the platform.

    Lists as Stripe does: newest first (by `created`, then the last added), `limit`, `created` bounds
    (`params["created"] = {"gte": .., "lte": ..}`), and `starting_after`, which answers resource_missing
    when that object is not in the list (any more). A child list (`/v1/customers/{id}/payment_methods`)
    answers resource_missing when its parent is not in the parent list of the same account.
    `fail_next` answers the next calls, in order: a failure, or None for a normal answer (`fail_after`).
    """

    lists: dict[tuple[str | None, str], list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[ListCall] = field(default_factory=list)  # every call, failed ones included
    fail_next: list[StripeFailure | None] = field(default_factory=list)

    def add(self, path: str, *objects: dict[str, Any], account: str | None = None) -> None:
        self.lists.setdefault((account, path), []).extend(copy.deepcopy(list(objects)))

    def delete(self, path: str, object_id: str, *, account: str | None = None) -> None:
        listed = self.lists.get((account, path), [])
        self.lists[(account, path)] = [o for o in listed if o.get("id") != object_id]

    def fail_after(self, calls: int, *failures: StripeFailure) -> None:
        """Answer the next `calls` calls normally, then with `failures`, one per call."""
        self.fail_next = [None] * calls + list(failures)

    def list_page(
        self, path: str, params: dict[str, Any], *, starting_after: str | None, stripe_account: str | None
    ) -> Page:
        self.calls.append(ListCall(path, copy.deepcopy(params), starting_after, stripe_account))
        failure = self.fail_next.pop(0) if self.fail_next else None
        if failure is not None:
            raise StripeCallError(failure)
        parts = path.strip("/").split("/")  # v1, parents, [parent id, children]
        if len(parts) == 4 and parts[2] not in self._ids(stripe_account, f"/v1/{parts[1]}"):
            raise StripeCallError(resource_missing(f"No such {parts[1].removesuffix('s')}: '{parts[2]}'"))
        listed = self.lists.get((stripe_account, path), [])
        newest_first = sorted(range(len(listed)), key=lambda n: (listed[n].get("created", 0), n))[::-1]
        ordered = [listed[n] for n in newest_first]
        if starting_after is not None:
            ids = [o.get("id") for o in ordered]
            if starting_after not in ids:
                raise StripeCallError(resource_missing(f"No such object: '{starting_after}'"))
            ordered = ordered[ids.index(starting_after) + 1 :]
        created = params.get("created") or {}
        gte, lte = created.get("gte"), created.get("lte")
        matching = [
            o
            for o in ordered
            if (gte is None or o.get("created", 0) >= gte) and (lte is None or o.get("created", 0) <= lte)
        ]
        limit = int(params.get("limit", 10))
        return Page(objects=copy.deepcopy(matching[:limit]), has_more=len(matching) > limit)

    def _ids(self, account: str | None, path: str) -> list[Any]:
        return [o.get("id") for o in self.lists.get((account, path), [])]

    def calls_to(self, path: str) -> list[ListCall]:
        return [call for call in self.calls if call.path == path]


@dataclass
class FakeCursorStore:
    """`backfill.ports.CursorStore`: cursors kept as copies (JSON in DynamoDB), a run's first `as_of`.

    `crash_before_save`: the number (1-based, over this store's life) of the save at which the process
    "dies" instead of saving (SimulatedCrash, once): a page stored and published, its cursor not saved.
    """

    runs: dict[str, int] = field(default_factory=dict)
    saved: dict[tuple[str, str | None, str], Cursor] = field(default_factory=dict)
    saves: int = 0
    crash_before_save: int | None = None

    def start_run(self, run_id: str, as_of: int) -> int:
        return self.runs.setdefault(run_id, as_of)

    def load(self, run_id: str, account: str | None, resource: str) -> Cursor | None:
        found = self.saved.get((run_id, account, resource))
        return dataclasses.replace(found) if found is not None else None

    def save(self, cursor: Cursor) -> None:
        self.saves += 1
        if self.saves == self.crash_before_save:
            self.crash_before_save = None
            raise SimulatedCrash(f"crashed before saving the cursor of {cursor.resource}")
        self.saved[(cursor.run_id, cursor.account, cursor.resource)] = dataclasses.replace(cursor)

    def cursors(self, run_id: str) -> list[Cursor]:
        return [dataclasses.replace(c) for key, c in self.saved.items() if key[0] == run_id]


@dataclass
class FakePoisonSink:
    """`backfill.ports.PoisonSink`: keeps the records (JSON round-tripped); `fail` is an SQS outage."""

    records: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def put(self, record: dict[str, Any]) -> None:
        if self.fail:
            raise UnavailableError("fake poison sink refused the record")
        self.records.append(json.loads(json.dumps(record, default=str)))


@dataclass
class FakeCatchupCursors:
    """`backfill.catchup.CatchupCursorStore`: one cursor per mode that never moves back.

    `history` is every value a cursor took, in order (refused moves back are not in it).
    """

    until: dict[bool, int] = field(default_factory=dict)
    history: list[int] = field(default_factory=list)
    unavailable: bool = False

    def load(self, livemode: bool) -> int | None:
        if self.unavailable:
            raise StoreUnavailableError("fake catch-up cursor store is unavailable")
        return self.until.get(livemode)

    def advance(self, livemode: bool, until: int) -> None:
        if self.unavailable:
            raise StoreUnavailableError("fake catch-up cursor store is unavailable")
        current = self.until.get(livemode)
        if current is None or until > current:
            self.until[livemode] = until
            self.history.append(until)


@dataclass
class FakeFlakyEventQueue(FakeEventQueue):
    """A FakeEventQueue that accepts its first `accept` messages, then refuses like an SQS outage."""

    accept: int | None = None  # None: no outage

    def enqueue(self, event: QueuedEvent) -> str:
        if self.accept is not None and len(self.events) >= self.accept:
            self.fail = True
        return super().enqueue(event)

    def recover(self) -> None:
        self.accept, self.fail = None, False
