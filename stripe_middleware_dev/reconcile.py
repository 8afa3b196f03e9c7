"""`stripe-middleware reconcile`: payouts explained to the cent, as a report a finance person can read.

    stripe-middleware reconcile --payout po_... [--accounts acct_...] [--stage S] [--json]
    stripe-middleware reconcile --since YYYY-MM-DD [--until YYYY-MM-DD] [--accounts platform,acct_..]

Locally (no `--stage`) the run happens in this process against the running local mode (its table and bus)
and any Stripe-compatible server (`STRIPE_API_KEY`, `STRIPE_API_BASE`), exactly as `backfill` does. With
`--stage` the deployed reconcile function (stack output `ReconcileFunctionName`) runs it, under your AWS
credentials (functions/reconcile/handler.py). Both answer alike, `{"records": [<Reconciliation.to_record()>
...], "pending": {payout id: why}, "counters": {...}}` and for a period also `"since"`, `"until"`,
`"not_paid_out"`, `"not_judged"` and `"failed"`, printed as a report or, with `--json`, as is.

Exit code: 0 when every payout is balanced or its gaps were repaired (payouts Stripe cannot tie to
transactions, or has not finished tying, have no gaps to judge), 1 when open discrepancies remain or the
run could not finish (the error says why; running again is safe), 2 on bad input (arguments, an unknown
payout, no Stripe key).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stripe_middleware.reconciliation.models import (
    DISCREPANCIES,
    KINDS,
    UNRECONCILABLE,
    money,
)
from stripe_middleware_dev import targets, use_repo_config

if TYPE_CHECKING:
    from stripe_middleware.reconciliation.run import Counters, PayoutRun, Reconciler

PLATFORM = "platform"
DAY = 24 * 3600
# Lambda's longest run, plus the time to answer: a payout of tens of thousands of transactions is read at
# the shared read rate.
INVOKE_READ_TIMEOUT = 930
ITEMS_SHOWN = 3  # items named per discrepancy in the report (the record keeps up to 100, `--json` shows them)


class BadInputError(ValueError):
    """The arguments cannot make a request (exit 2)."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "reconcile",
        help="explain payouts to the cent against the store: totals per reporting category, every gap "
        "found (objects missing from the store are fetched and stored)",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--payout", metavar="PO_ID", help="reconcile this payout (po_...)")
    which.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="reconcile every payout created from this day (YYYY-MM-DD, UTC, or unix), and look for "
        "charges and refunds of the period no payout paid out",
    )
    parser.add_argument(
        "--until",
        type=_date,
        metavar="DATE",
        help="with --since: up to the end of this day (YYYY-MM-DD, UTC) or this unix time (default: now)",
    )
    parser.add_argument(
        "--accounts",
        help="platform (default) and/or connected accounts (acct_...), comma-separated; --payout takes one",
    )
    parser.add_argument("--json", action="store_true", help="print the records as JSON instead of a report")
    targets.add_stage_argument(parser)
    parser.set_defaults(run=run)


def _date(value: str) -> tuple[int, bool]:
    """(unix time, whether it was a day): a day starts at 00:00 UTC; `--until` takes the day to its end."""
    if value.isdigit():
        return int(value), False
    try:
        return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()), True
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither YYYY-MM-DD nor a unix timestamp") from None


def build_request(args: argparse.Namespace, *, now: float) -> dict[str, Any]:
    """The reconcile function's input for these arguments: `{"payout_id", "account"}` or `{"since",
    "until", "accounts"}` (None: the platform). BadInputError says what is wrong."""
    accounts = _accounts(args.accounts)
    if args.payout is not None:
        if args.until is not None:
            raise BadInputError("--until goes with --since, not --payout")
        if not args.payout.startswith("po_"):
            raise BadInputError(f"{args.payout!r} is not a payout id (po_...)")
        if len(accounts) > 1:
            raise BadInputError("a payout belongs to one account: give --accounts at most one")
        return {"payout_id": args.payout, "account": accounts[0]}
    since, _ = args.since
    until = int(now)
    if args.until is not None:
        until, day = args.until
        until += DAY - 1 if day else 0
    if until < since:
        raise BadInputError("--until is before --since")
    return {"since": since, "until": until, "accounts": accounts}


def _accounts(text: str | None) -> list[str | None]:
    names = [n.strip() for n in (text or PLATFORM).split(",") if n.strip()]
    if not names:
        raise BadInputError("--accounts names no account")
    accounts: list[str | None] = []
    for name in names:
        if name != PLATFORM and not name.startswith("acct_"):
            raise BadInputError(f"{name!r} is neither `platform` nor a connected account id (acct_...)")
        account = None if name == PLATFORM else name
        if account not in accounts:
            accounts.append(account)
    return accounts


def run(args: argparse.Namespace) -> int:
    use_repo_config()
    try:
        request = build_request(args, now=time.time())
    except BadInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    target = targets.resolve(args)
    answer = _run_locally(target, request) if target.local else _invoke(target, request)
    if isinstance(answer, int):
        return answer
    print(json.dumps(answer, indent=2) if args.json else format_report(answer))
    return exit_code(answer)


# -- running ------------------------------------------------------------------------------------------------
def reconcile(reconciler: Reconciler, request: Mapping[str, Any]) -> dict[str, Any]:
    """Run `request` (build_request's shape) and answer as the deployed function does (a test holds the
    two answers equal). Raises what `reconcile_payout` and `sweep` raise."""
    from stripe_middleware.reconciliation.run import reconcile_payout, sweep

    def summary(runs: Sequence[PayoutRun], counters: Counters) -> dict[str, Any]:
        return {
            "records": [run.record.to_record() for run in runs if run.record is not None],
            "pending": {run.payout_id: run.pending for run in runs if run.pending},
            "counters": asdict(counters),
        }

    if "payout_id" in request:
        run = reconcile_payout(reconciler, request["payout_id"], account=request.get("account"))
        return summary([run], run.counters)
    swept = sweep(
        reconciler,
        since=int(request["since"]),
        until=int(request["until"]),
        accounts=tuple(request.get("accounts") or (None,)),
    )
    return {
        **summary(swept.runs, swept.counters),
        "since": swept.since,
        "until": swept.until,
        "not_paid_out": [d.detail() for d in swept.not_paid_out],
        "not_judged": swept.not_judged,
        "failed": dict(swept.failed),
    }


def _run_locally(target: targets.Target, request: dict[str, Any]) -> dict[str, Any] | int:
    from stripe_middleware.adapters.history import build
    from stripe_middleware.backfill.ports import BackfillFailedError
    from stripe_middleware.backfill.settings import HistorySettings
    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware.shared.errors import RejectedError, UnavailableError
    from stripe_middleware_dev.history import _settings  # local mode's history settings, one definition

    try:
        api_key = targets.local_stripe_key()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    history = build(_settings(target, HistorySettings, STRIPE_API_VERSION), target.client, api_key)
    reconciler = history.reconciler(target.client("dynamodb"), target.require("table_name"))
    try:
        return reconcile(reconciler, request)
    except RejectedError as error:  # an unknown payout
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except BackfillFailedError as error:  # the key, its permissions, or a request Stripe does not serve
        print(f"error: {error}", file=sys.stderr)
        return 1
    except UnavailableError as error:
        print(
            f"error: {error}\nWhat was stored or published stays; run again to finish (it resumes).",
            file=sys.stderr,
        )
        return 1


def _invoke(target: targets.Target, request: dict[str, Any]) -> dict[str, Any] | int:
    from botocore.config import Config

    name = target.require("reconcile_function_name")
    lambda_client = target.client(
        "lambda", config=Config(read_timeout=INVOKE_READ_TIMEOUT, retries={"max_attempts": 0})
    )
    response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(request).encode())
    answer = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        refused = answer.get("errorType") in ("UnknownPayoutError", "NotFoundError", "RejectedError")
        print(f"error: the reconcile function failed: {answer.get('errorMessage', answer)}", file=sys.stderr)
        return 2 if refused else 1
    if "skipped" in answer:  # no key in the StripeReadOnlyKey secret yet
        print(f"error: reconciliation is idle: {answer['skipped']}", file=sys.stderr)
        return 1
    return dict(answer)


# -- the report ---------------------------------------------------------------------------------------------
def exit_code(answer: Mapping[str, Any]) -> int:
    """0 when nothing is left open, 1 when a record has open discrepancies or a payout failed."""
    records = answer.get("records") or []
    open_gaps = any(r.get("status") == DISCREPANCIES for r in records)
    return 1 if open_gaps or answer.get("failed") or _orphans(answer) else 0


def format_report(answer: Mapping[str, Any]) -> str:
    """The answer as a finance person reads it: per payout its facts, totals per reporting category and
    currency, and each discrepancy; a last line that says `balanced` or how many gaps (how many repaired)."""
    lines: list[str] = []
    records = list(answer.get("records") or [])
    for record in records:
        lines += payout_lines(record)
        lines.append("")
    for payout_id, why in sorted((answer.get("pending") or {}).items()):
        lines += [f"Payout {payout_id}: not reconciled yet", f"  {why}", ""]
    orphans = _orphans(answer)
    if orphans:
        lines.append("Not paid out (their payout's record could not be written; run again):")
        for discrepancy in orphans:
            lines += _discrepancy_lines(discrepancy)
        lines.append("")
    for payout_id, why in sorted((answer.get("failed") or {}).items()):
        lines.append(f"FAILED  payout {payout_id}: {why} (run again to finish it)")
    if answer.get("failed"):
        lines.append("")
    if not records and not answer.get("pending") and not answer.get("failed"):
        lines += ["No payout was created in that period.", ""]
    if not_judged := int(answer.get("not_judged") or 0):
        lines.append(
            f"{_n(not_judged, 'succeeded charge or refund', 'succeeded charges and refunds')} of the period "
            "could not be judged paid out or not yet (no balance transaction yet, or the payout due to pay "
            "it out is manual, instant or not reconciled by Stripe yet)."
        )
    counters = answer.get("counters") or {}
    if counters:
        lines.append(
            f"Spent {_n(counters.get('stripe_calls', 0), 'Stripe call')} "
            f"({_n(counters.get('transaction_pages', 0), 'page')} of balance transactions) and "
            f"{_n(counters.get('store_reads', 0), 'store read')} "
            f"({_n(counters.get('store_keys', 0), 'object')}); "
            f"stored {_n(counters.get('repaired', 0), 'missing object')}."
        )
    lines.append(summary_line(answer))
    return "\n".join(lines)


def summary_line(answer: Mapping[str, Any]) -> str:
    """`N payouts: balanced` or `N payouts: D discrepancies (M repaired)`, then what was not judged."""
    records = list(answer.get("records") or [])
    found = sum(_found(r) for r in records) + len(_orphans(answer))
    repaired = sum(_repaired(r) for r in records)
    judged = [r for r in records if r.get("status") != UNRECONCILABLE]
    payouts = len(records) + len(answer.get("pending") or []) + len(answer.get("failed") or {})
    head = f"{payouts} payout{'' if payouts == 1 else 's'}: "
    if found:
        head += f"{found} discrepanc{'y' if found == 1 else 'ies'} ({repaired} repaired)"
        if found > repaired:
            head += f", {found - repaired} open"
    elif judged:
        head += "balanced"
    else:
        head += "nothing to judge"
    notes = []
    if unreconcilable := len(records) - len(judged):
        notes.append(f"{unreconcilable} unreconcilable by Stripe")
    if pending := len(answer.get("pending") or []):
        notes.append(f"{pending} not reconciled by Stripe yet")
    if failed := len(answer.get("failed") or {}):
        notes.append(f"{failed} failed (run again)")
    return head + "".join(f"; {n}" for n in notes)


def payout_lines(record: Mapping[str, Any]) -> list[str]:
    """One payout: its facts, its totals per reporting category and currency, its discrepancies."""
    payout = record.get("payout") or {}
    mode = "live" if record.get("livemode") else "test"
    lines = [f"Payout {record['payout_id']} ({_account(record.get('account'))}, {mode} mode)"]
    kind = ", ".join(
        w
        for w in (
            "automatic" if payout.get("automatic") else "manual",
            payout.get("method"),
            payout.get("status"),
        )
        if w
    )
    status = str(record.get("status"))
    found, repaired = _found(record), _repaired(record)
    if found:
        status += f": {found} found, {repaired} repaired, {found - repaired} open"
    lines += [
        f"  status        {status}",
        f"  amount        {money(payout.get('amount'), payout.get('currency'))} ({kind})",
        f"  arrival date  {_day(payout.get('arrival_date'))} (created {_day(payout.get('created'))})",
    ]
    if record.get("reason"):
        lines.append(f"  why           {record['reason']}")
        return lines
    lines.append(f"  transactions  {record.get('transactions', 0)}")
    lines += ["", *totals_lines(record.get("totals") or [], record.get("net") or {}, payout)]
    unchecked = record.get("unchecked") or {}
    if unchecked:
        what = ", ".join(f"{count} {kind}" for kind, count in sorted(unchecked.items()))
        lines.append(f"  not compared with the store (the store keeps no such object): {what}")
    discrepancies = list(record.get("discrepancies") or [])
    if discrepancies:
        lines += ["", "  Discrepancies"]
        for discrepancy in discrepancies:
            lines += _discrepancy_lines(discrepancy)
        if record.get("discrepancies_truncated"):
            lines.append(f"  ... {found - len(discrepancies)} more, counted in {_counts(record)}")
    return lines


def totals_lines(
    totals: Sequence[Mapping[str, Any]], net: Mapping[str, int], payout: Mapping[str, Any]
) -> list[str]:
    """Count, gross, fees and net per reporting category and currency; per currency a total, set against
    what the payout pays out in it."""
    header = ("reporting category", "currency", "count", "gross", "fees", "net")
    rows: list[tuple[str, ...]] = []
    for currency in sorted({str(t["currency"]) for t in totals} | set(net)):
        mine = [t for t in totals if t["currency"] == currency]
        for total in mine:
            rows.append(
                (
                    str(total["reporting_category"]),
                    currency.upper(),
                    str(total["count"]),
                    *(_number(total[k], currency) for k in ("amount", "fee", "net")),
                )
            )
        sums = [sum(int(t[k]) for t in mine) for k in ("count", "amount", "fee")]
        rows.append(
            (
                "total",
                currency.upper(),
                str(sums[0]),
                _number(sums[1], currency),
                _number(sums[2], currency),
                _number(net.get(currency, 0), currency),
            )
        )
        paid = int(payout.get("amount") or 0) if currency == payout.get("currency") else 0
        rows.append(("paid out", currency.upper(), "", "", "", _number(paid, currency)))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _discrepancy_lines(discrepancy: Mapping[str, Any]) -> list[str]:
    state = "repaired" if discrepancy.get("repaired") else "OPEN"
    about = " ".join(str(discrepancy[k]) for k in ("object_type", "object_id") if discrepancy.get(k))
    where = [str(discrepancy[k]) for k in ("balance_transaction", "reporting_category") if discrepancy.get(k)]
    head = f"  {state:<9} {discrepancy['kind']:<18} {about}" + (f" ({', '.join(where)})" if where else "")
    lines = [head]
    sides = _sides(discrepancy)
    if sides:
        lines.append(f"{'':<12}{sides}")
    items = list(discrepancy.get("items") or [])
    count = int(discrepancy.get("item_count") or len(items))
    if items and (count > 1 or discrepancy.get("kind") != "missing_in_store"):
        shown = ", ".join(items[:ITEMS_SHOWN]) + (
            f" and {count - ITEMS_SHOWN} more" if count > ITEMS_SHOWN else ""
        )
        lines.append(f"{'':<12}items: {shown}")
    if discrepancy.get("message"):
        lines.append(f"{'':<12}{discrepancy['message']}")
    return lines


def _sides(discrepancy: Mapping[str, Any]) -> str:
    """What Stripe and the store hold, where the discrepancy carries amounts."""
    stripe, store = discrepancy.get("stripe") or {}, discrepancy.get("store")
    if "payout_amount" in stripe:  # unbalanced_payout
        currency = discrepancy.get("currency")
        return (
            f"payout {money(stripe['payout_amount'], currency)}, transactions net "
            f"{money(stripe['transactions_net'], currency)}, "
            f"difference {money(stripe['difference'], currency)}"
        )
    if "amount" not in stripe:
        return ""
    if "available_on" in stripe:  # not_paid_out: the balance transaction's amount and when it was available
        amount = money(stripe["amount"], stripe.get("currency"))
        text = f"Stripe: {amount} available on {_day(stripe['available_on'])}"
    else:
        text = f"Stripe: {_facts(stripe)}"
    if store is None:
        return text + "; store: not there"
    return text + f"; store: {_facts(store)}" if "amount" in store else text


def _facts(side: Mapping[str, Any]) -> str:
    return " ".join(
        w for w in (money(side.get("amount"), side.get("currency")), side.get("status")) if isinstance(w, str)
    )


# -- helpers ------------------------------------------------------------------------------------------------
def _found(record: Mapping[str, Any]) -> int:
    return sum(int(n) for n in (record.get("discrepancy_counts") or {}).values())


def _repaired(record: Mapping[str, Any]) -> int:
    return sum(1 for d in record.get("discrepancies") or [] if d.get("repaired"))


def _counts(record: Mapping[str, Any]) -> str:
    counts = record.get("discrepancy_counts") or {}
    order = {kind: n for n, kind in enumerate(KINDS)}
    return ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: order.get(k, len(order))))


def _orphans(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`not_paid_out` gaps no record carries (their payout's record was not written)."""
    recorded = {d.get("discrepancy_id") for r in answer.get("records") or [] for d in _all(r)}
    return [d for d in answer.get("not_paid_out") or [] if d.get("discrepancy_id") not in recorded]


def _all(record: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    return record.get("discrepancies") or []


def _account(account: str | None) -> str:
    return account or "platform account"


def _day(value: Any) -> str:
    return str(value)[:10] if value else "-"


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _number(amount: int, currency: str) -> str:
    """An amount in the currency's major unit without its code (the table has a currency column)."""
    return money(amount, currency).removesuffix(currency.upper()).rstrip()
