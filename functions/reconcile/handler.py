"""Reconciliation Lambda: each automatic payout's balance transactions against the store, its gaps found,
its missing objects repaired (stripe_middleware.reconciliation).

Three inputs:
- an SQS batch from the reconciliation queue: `payout.paid` / `payout.reconciliation_completed` events from
  the bus, one payout each (a failed one goes back to SQS alone, then to its DLQ);
- `{}` from the daily schedule: every payout created in the last SWEEP_DAYS days, of the platform and the
  accounts in RECONCILE_ACCOUNTS, and the charges and refunds of that period that no payout paid out;
- `{"payout_id": "po_...", "account": null}` or `{"since": <unix>, "until": <unix>, "accounts": [null,
  "acct_..."]}` from `stripe-middleware reconcile --stage`.
It returns the records it wrote or found unchanged. Until a key is put in the StripeReadOnlyKey secret the
function logs a warning and does nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from stripe_middleware.adapters import aws
from stripe_middleware.adapters.history import KeyNotConfiguredError, from_lambda_env
from stripe_middleware.reconciliation.run import (
    Counters,
    PayoutRun,
    Reconciler,
    SweepRun,
    reconcile_payout,
    sweep,
    sweep_period,
    triggered_payout,
)
from stripe_middleware.shared.contract import Metric
from stripe_middleware.shared.errors import RejectedError

logger = Logger()
metrics = Metrics()
# A charge is judged `not_paid_out` only once a payout due after it exists (available_on + a day), so the
# sweep must reach back past the longest payout delay (up to 14 days for new or high-risk accounts); a
# payout is reconciled again by every sweep that covers it, which writes and publishes only what changed.
SWEEP_DAYS = 16


@cache
def reconciler() -> Reconciler:
    history = from_lambda_env()
    return history.reconciler(aws.client("dynamodb", aws.QUEUE_CONSUMER), os.environ["TABLE_NAME"])


def accounts_of(event: dict[str, Any]) -> list[str | None]:
    """The accounts a sweep covers: the input's, else the platform and RECONCILE_ACCOUNTS."""
    if "accounts" in event:
        accounts = event["accounts"]
        if not isinstance(accounts, list) or not all(a is None or _is_account(a) for a in accounts):
            raise RejectedError(
                "invalid_accounts", "`accounts` is a list of null (the platform) and acct_ ids"
            )
        return accounts or [None]
    configured = [a.strip() for a in os.environ.get("RECONCILE_ACCOUNTS", "").split(",") if a.strip()]
    return [None, *configured]


def _is_account(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("acct_")


def _time(event: dict[str, Any], key: str, default: int) -> int:
    value = event.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise RejectedError(f"invalid_{key}", f"`{key}` must be a unix time in seconds, not {value!r}")


def summary(runs: list[PayoutRun], counters: Counters) -> dict[str, Any]:
    return {
        "records": [run.record.to_record() for run in runs if run.record is not None],
        "pending": {run.payout_id: run.pending for run in runs if run.pending},
        "counters": vars(counters),
    }


def observe(runs: list[PayoutRun], counters: Counters) -> None:
    """Metrics and one log line per payout, the payout id as correlation id."""
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for run in runs:
        logger.set_correlation_id(run.payout_id)
        if run.record is None:
            logger.info("payout not reconcilable yet", extra={"reason": run.pending})
            continue
        record = run.record.to_record()
        statuses[record["status"]] += 1
        kinds.update(record["discrepancy_counts"])
        log = logger.warning if record["status"] == "discrepancies" else logger.info
        log(
            "payout reconciled",
            extra={
                "status": record["status"],
                "account": run.account,
                "discrepancies": record["discrepancy_counts"],
                "repaired": len(run.repaired),
                "written": run.written,
            },
        )
    logger.set_correlation_id(None)
    for status, count in statuses.items():
        with single_metric(name=Metric.PAYOUTS_RECONCILED, unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="status", value=status)
    for kind, count in kinds.items():
        with single_metric(
            name=Metric.RECONCILIATION_DISCREPANCIES, unit=MetricUnit.Count, value=count
        ) as metric:
            metric.add_dimension(name="kind", value=kind)
    metrics.add_metric(Metric.RECONCILIATION_REPAIRED, MetricUnit.Count, counters.repaired)
    metrics.add_metric(Metric.RECONCILIATION_STRIPE_CALLS, MetricUnit.Count, counters.stripe_calls)


def _from_queue(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One payout per message; a message that fails is handed back to SQS alone."""
    runs: list[PayoutRun] = []
    failures: list[dict[str, str]] = []
    before = Counters(**vars(reconciler().counters))
    for record in records:
        try:
            event = json.loads(record["body"])
            trigger = triggered_payout(event.get("detail-type", ""), event.get("detail") or {})
            if trigger is None or trigger.livemode != reconciler().livemode:
                logger.info(
                    "not a payout of this key's mode; skipped", extra={"message_id": record["messageId"]}
                )
                continue
            runs.append(
                reconcile_payout(
                    reconciler(), trigger.payout_id, account=trigger.account, payout=trigger.payout
                )
            )
        except Exception as error:
            logger.warning(
                "payout not reconciled; SQS will redeliver it",
                extra={"message_id": record["messageId"], "reason": f"{type(error).__name__}: {error}"},
            )
            metrics.add_metric(Metric.RECONCILIATION_FAILURES, MetricUnit.Count, 1)
            failures.append({"itemIdentifier": record["messageId"]})
    counters = reconciler().counters.minus(before)
    observe(runs, counters)
    return {"batchItemFailures": failures}


def _sweep(event: dict[str, Any]) -> SweepRun:
    since, until = sweep_period(SWEEP_DAYS, now=time.time())
    return sweep(
        reconciler(),
        since=_time(event, "since", since),
        until=_time(event, "until", until),
        accounts=accounts_of(event),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        reconciler()
    except KeyNotConfiguredError as error:  # a fresh deploy: idle, not failing every day
        logger.warning(f"reconciliation is idle: {error}")
        return {"skipped": str(error)}
    if "Records" in event:
        return _from_queue(event["Records"])
    if "payout_id" in event:
        payout_id, account = event["payout_id"], event.get("account")
        if not (isinstance(payout_id, str) and payout_id.startswith("po_")) or not (
            account is None or _is_account(account)
        ):
            raise RejectedError("invalid_payout", "`payout_id` is a po_ id and `account` null or an acct_ id")
        run = reconcile_payout(reconciler(), payout_id, account=account)
        observe([run], run.counters)
        return summary([run], run.counters)
    result = _sweep(event)
    observe(result.runs, result.counters)
    metrics.add_metric(Metric.RECONCILIATION_NOT_JUDGED, MetricUnit.Count, result.not_judged)
    if result.failed:
        metrics.add_metric(Metric.RECONCILIATION_FAILURES, MetricUnit.Count, len(result.failed))
        logger.error("payouts not finished; the next sweep retries them", extra={"failed": result.failed})
    return {
        **summary(result.runs, result.counters),
        "since": result.since,
        "until": result.until,
        "not_paid_out": [d.detail() for d in result.not_paid_out],
        "not_judged": result.not_judged,
        "failed": result.failed,
    }
