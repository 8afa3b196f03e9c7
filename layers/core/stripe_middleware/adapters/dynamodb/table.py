"""The store table's layout: keys, indexes and every key prefix, in one place.

One definition serves the DynamoDB adapters, the CDK stack and local mode (via the synthesized template).

  object      pk = OBJ#{object_type}#{object_id}  sk = {account or "platform"}#{live|test}
  event       pk = EVT#{event_id}                 sk = EVT      (de-duplication record, TTL `expires_at`)
  command     pk = CMD#{command_id}               sk = CMD
  rate slot   pk = RATE#{key}#{window}            sk = RATE     (TTL `expires_at`)
  backfill    pk = BFRUN#{run_id}                 sk = RUN (its as_of) or CUR#{account}#{type} (cursors)
  catch-up    pk = CATCHUP#{live|test}            sk = CURSOR   (`until`: events enqueued up to this time)
  fact        pk = SIG#{subject}                  sk = FACT#{created:010d}#{fact id}   (TTL `expires_at`)
  churn risk  pk = SIG#{subject}                  sk = CHURN    (the customer's last published level)
  buyer watch pk = SIG#BUYERS#{shard 0..15}       sk = {customer subject}   (TTL `expires_at`; the re-score
              reads the 16 partitions; a subject names its mode and account, so scopes never mix)
  anomaly     pk = SIGNAL#{signal_id}             sk = SIGNAL   (TTL `expires_at`)
  payout reconciliation  pk = RECON#{payout_id}   sk = {account or "platform"}#{live|test}
  dunning     pk = DUNNING#{invoice_id} | DUNNING#CLOCK   sk = LOCAL   (local mode only: its clock, and
              the stages each workflow ran; on AWS Step Functions keeps a workflow's state)
  gsi customer      gsi1pk = CUS#{account}#{mode}#{customer_id}              gsi1sk = {type}#{created}#{id}
  gsi type_created  gsi2pk = TYPE#{account}#{mode}#{object_type}#{YYYY-MM}   gsi2sk = {created}#{id}
  signals (churn risk and anomaly records) use the same two indexes under their own partitions:
  gsi customer      gsi1pk = SIGCUS#{account}#{mode}#{customer_id}           gsi1sk = {as_of}#{signal_id}
  gsi type_created  gsi2pk = SIGNALS#{account}#{mode}#{YYYY-MM}              gsi2sk = {as_of}#{signal_id}
  reconciliation records are listed by their payout's `created` month:
  gsi type_created  gsi2pk = RECONS#{account}#{mode}#{YYYY-MM}               gsi2sk = {as_of}#{payout_id}
"""

from __future__ import annotations

import hashlib
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


SIGNAL_PARTITIONS = ("SIG#*", "SIGNAL#*")  # the signals function's items (facts, churn risk, anomalies)
RESCORE_PARTITIONS = ("SIG#*",)  # the buyers' re-score's: their watches and churn-risk records


def fact_key(subject: str, created: int, fact_id: str) -> dict[str, str]:
    """A fact's sort key starts with its object's `created` (which never changes), so a subject's facts
    can be read from a time on."""
    return {PARTITION_KEY: f"SIG#{subject}", SORT_KEY: f"FACT#{created:010d}#{fact_id}"}


def fact_range(subject: str, since: int) -> tuple[str, str]:
    """The partition and the first sort key of a subject's facts created at or after `since`."""
    return f"SIG#{subject}", f"FACT#{max(since, 0):010d}"


def churn_key(subject: str) -> dict[str, str]:
    return {PARTITION_KEY: f"SIG#{subject}", SORT_KEY: "CHURN"}


def buyer_watch_partition(shard: int) -> str:
    return f"SIG#BUYERS#{shard}"


def buyer_watch_key(subject: str, shards: int) -> dict[str, str]:
    """A one-off buyer's watch, in one of `shards` partitions by a hash of the subject."""
    shard = int(hashlib.sha256(subject.encode()).hexdigest()[:8], 16) % shards
    return {PARTITION_KEY: buyer_watch_partition(shard), SORT_KEY: subject}


def anomaly_key(signal_id: str) -> dict[str, str]:
    return {PARTITION_KEY: f"SIGNAL#{signal_id}", SORT_KEY: "SIGNAL"}


def signal_customer_partition(account: str | None, livemode: bool, customer_id: str) -> str:
    return f"SIGCUS#{scope(account, livemode)}#{customer_id}"


def signal_month_partition(account: str | None, livemode: bool, month: str) -> str:
    return f"SIGNALS#{scope(account, livemode)}#{month}"


def signal_index_keys(
    account: str | None, livemode: bool, *, customer_id: str | None, as_of: str, signal_id: str
) -> dict[str, str]:
    """Where a signal record is found: by its customer, and among its scope's signals of a month."""
    keys = {
        TYPE_CREATED_INDEX.partition_key: signal_month_partition(account, livemode, as_of[:7]),
        TYPE_CREATED_INDEX.sort_key: f"{as_of}#{signal_id}",
    }
    if customer_id:
        keys[CUSTOMER_INDEX.partition_key] = signal_customer_partition(account, livemode, customer_id)
        keys[CUSTOMER_INDEX.sort_key] = f"{as_of}#{signal_id}"
    return keys


RECONCILIATION_PARTITIONS = ("RECON#*",)  # the reconciliation records (objects it repairs are OBJ#*)


def reconciliation_key(payout_id: str, account: str | None, livemode: bool) -> dict[str, str]:
    """One record per payout and scope: a connected account's payout ids are its own."""
    return {PARTITION_KEY: f"RECON#{payout_id}", SORT_KEY: scope(account, livemode)}


def reconciliation_month_partition(account: str | None, livemode: bool, month: str) -> str:
    return f"RECONS#{scope(account, livemode)}#{month}"


def reconciliation_index_keys(
    account: str | None, livemode: bool, *, as_of: str, payout_id: str
) -> dict[str, str]:
    """Where a record is listed: among its scope's reconciliations of the month its payout was created."""
    return {
        TYPE_CREATED_INDEX.partition_key: reconciliation_month_partition(account, livemode, as_of[:7]),
        TYPE_CREATED_INDEX.sort_key: f"{as_of}#{payout_id}",
    }


def dunning_local_key(invoice_id: str) -> dict[str, str]:
    """Local mode's record of an invoice's dunning workflow: when it started, which stages ran."""
    return {PARTITION_KEY: f"DUNNING#{invoice_id}", SORT_KEY: "LOCAL"}


DUNNING_CLOCK_KEY = {PARTITION_KEY: "DUNNING#CLOCK", SORT_KEY: "LOCAL"}  # local mode's clock offset


def string_key(key: dict[str, str]) -> dict[str, dict[str, str]]:
    """The low-level client's shape: `{"pk": {"S": ...}, ...}`."""
    return {name: {"S": value} for name, value in key.items()}
