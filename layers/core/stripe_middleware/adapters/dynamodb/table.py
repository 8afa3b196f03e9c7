"""The store table's layout: keys, indexes and every key prefix, in one place.

One definition serves the DynamoDB adapters, the CDK stack and local mode (via the synthesized template).

  object      pk = OBJ#{object_type}#{object_id}  sk = {account or "platform"}#{live|test}
  event       pk = EVT#{event_id}                 sk = EVT      (de-duplication record, TTL `expires_at`)
  command     pk = CMD#{command_id}               sk = CMD
  rate slot   pk = RATE#{key}#{window}            sk = RATE     (TTL `expires_at`)
  backfill    pk = BFRUN#{run_id}                 sk = RUN (its as_of) or CUR#{account}#{type} (cursors)
  catch-up    pk = CATCHUP#{live|test}            sk = CURSOR   (`until`: events enqueued up to this time)
  gsi customer      gsi1pk = CUS#{account}#{mode}#{customer_id}              gsi1sk = {type}#{created}#{id}
  gsi type_created  gsi2pk = TYPE#{account}#{mode}#{object_type}#{YYYY-MM}   gsi2sk = {created}#{id}
"""

from __future__ import annotations

from dataclasses import dataclass

from stripe_middleware.shared.contract import mode_label

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
PLATFORM = "platform"  # the account part of keys for the platform's own (non-Connect) objects
# Indexes carry the normalized attributes, not the object body: index writes are billed by size too.
INDEXED_ATTRIBUTES = (
    "object_type",
    "object_id",
    "account",
    "livemode",
    "customer_id",
    "amount",
    "currency",
    "status",
    "created",
    "updated",
    "deleted_at",
    "event_id",
    "event_type",
)


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


CUSTOMER_INDEX = Index("customer", "gsi1pk", "gsi1sk")  # all objects of one customer
TYPE_CREATED_INDEX = Index("type_created", "gsi2pk", "gsi2sk")  # objects of a type by created time
INDEXES = (CUSTOMER_INDEX, TYPE_CREATED_INDEX)
KEY_ATTRIBUTES = (PARTITION_KEY, SORT_KEY, *(k for i in INDEXES for k in (i.partition_key, i.sort_key)))


def scope(account: str | None, livemode: bool) -> str:
    """`acct_1#live`, `platform#test`: Connect accounts and modes never share a key."""
    return f"{account or PLATFORM}#{mode_label(livemode)}"


def object_partition(object_type: str, object_id: str) -> str:
    return f"OBJ#{object_type}#{object_id}"


def object_key(object_type: str, object_id: str, account: str | None, livemode: bool) -> dict[str, str]:
    return {PARTITION_KEY: object_partition(object_type, object_id), SORT_KEY: scope(account, livemode)}


def event_key(event_id: str) -> dict[str, str]:
    return {PARTITION_KEY: f"EVT#{event_id}", SORT_KEY: "EVT"}


def event_id_of(partition: str) -> str:
    return partition.removeprefix("EVT#")


def command_key(command_id: str) -> dict[str, str]:
    return {PARTITION_KEY: f"CMD#{command_id}", SORT_KEY: "CMD"}


def rate_key(key: str, window: int) -> dict[str, str]:
    return {PARTITION_KEY: f"RATE#{key}#{window}", SORT_KEY: "RATE"}


def backfill_run_key(run_id: str) -> dict[str, str]:
    return {PARTITION_KEY: f"BFRUN#{run_id}", SORT_KEY: "RUN"}


def backfill_cursor_key(run_id: str, account: str | None, resource: str) -> dict[str, str]:
    return {PARTITION_KEY: f"BFRUN#{run_id}", SORT_KEY: f"CUR#{account or PLATFORM}#{resource}"}


def catchup_cursor_key(livemode: bool) -> dict[str, str]:
    return {PARTITION_KEY: f"CATCHUP#{mode_label(livemode)}", SORT_KEY: "CURSOR"}


def customer_index_keys(
    account: str | None, livemode: bool, *, customer_id: str, object_type: str, created: str, object_id: str
) -> dict[str, str]:
    return {
        CUSTOMER_INDEX.partition_key: customer_partition(account, livemode, customer_id),
        CUSTOMER_INDEX.sort_key: f"{object_type}#{created}#{object_id}",
    }


def customer_partition(account: str | None, livemode: bool, customer_id: str) -> str:
    return f"CUS#{scope(account, livemode)}#{customer_id}"


def type_index_keys(
    account: str | None, livemode: bool, *, object_type: str, created: str, object_id: str
) -> dict[str, str]:
    return {
        TYPE_CREATED_INDEX.partition_key: f"TYPE#{scope(account, livemode)}#{object_type}#{created[:7]}",
        TYPE_CREATED_INDEX.sort_key: f"{created}#{object_id}",
    }


def string_key(key: dict[str, str]) -> dict[str, dict[str, str]]:
    """The low-level client's shape: `{"pk": {"S": ...}, ...}`."""
    return {name: {"S": value} for name, value in key.items()}
