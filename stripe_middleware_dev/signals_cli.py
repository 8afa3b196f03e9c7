"""`stripe-middleware signals train|backtest`: the churn model on an export of Stripe events.

The export is JSON Lines (optionally gzipped): one Stripe event object per line, as the Events API returns
them. `train` learns a model from the events up to the cutoff and writes its artifact (JSON, scored in
plain Python by the signals Lambda); `backtest` replays the events up to the cutoff, scores the
subscription customers live then, and measures the ranking against who churned within the horizon.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stripe_middleware.shared.clock import now_iso
from stripe_middleware.shared.errors import MiddlewareError
from stripe_middleware.signals.churn import CHURN_MODEL_ENV, load_churn_model
from stripe_middleware.signals.training import backtest_model, train_model
from stripe_middleware_dev import REPO_ROOT

DEFAULT_HORIZON_DAYS = 60
REPO_CHURN_MODEL = REPO_ROOT / "config" / "churn_model.json"


class EventsFileError(MiddlewareError):
    """The events file cannot be read as one Stripe event per line."""


# -- argparse types ---------------------------------------------------------------------------------------
def parse_cutoff(text: str) -> datetime:
    """An argparse type: a date (`2025-06-01`, midnight UTC) or an ISO 8601 time; UTC unless it says."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or ISO 8601 time") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_horizon(text: str) -> int:
    """An argparse type: days, as `60d` or `60`."""
    match = re.fullmatch(r"\s*(\d+)\s*d?\s*", text)
    if not match or not 1 <= int(match[1]) <= 365:
        raise argparse.ArgumentTypeError(f"{text!r} is not a horizon of 1 to 365 days (e.g. 60d)")
    return int(match[1])


# -- the commands -----------------------------------------------------------------------------------------
def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event of a JSONL or JSONL.gz file, one at a time (training keeps a digest of each, not the
    event); a line that is not a Stripe event names its number."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as error:
                    raise EventsFileError(f"{path}:{number}: not JSON ({error})") from error
                if not isinstance(event, dict) or not isinstance(event.get("created"), int):
                    raise EventsFileError(f"{path}:{number}: not a Stripe event (no `created`)")
                yield event
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise EventsFileError(f"{path}: cannot be read: {error}") from error


def train(
    events_path: Path, out_path: Path, cutoff: datetime, horizon_days: int = DEFAULT_HORIZON_DAYS
) -> dict[str, Any]:
    """Learn the churn model from the events up to `cutoff`, write its artifact to `out_path`, and return
    the training report (held-out metrics)."""
    model, report = train_model(
        read_events(events_path),
        cutoff=int(cutoff.timestamp()),
        horizon_days=horizon_days,
        trained_at=now_iso(),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(model.to_json())
    return {**report, "events_file": str(events_path), "model_file": str(out_path)}


def backtest(
    events_path: Path,
    model_path: Path | None,
    cutoff: datetime,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> dict[str, Any]:
    """Score the customers live at `cutoff` with the model (default: $CHURN_MODEL_PATH, else the
    repository's config/churn_model.json) and measure it against who churned within the horizon."""
    path = model_path or Path(os.environ.get(CHURN_MODEL_ENV) or REPO_CHURN_MODEL)
    model = load_churn_model(path)
    report = backtest_model(
        read_events(events_path), model, cutoff=int(cutoff.timestamp()), horizon_days=horizon_days
    )
    return {**report, "events_file": str(events_path), "model_file": str(path)}


# -- the report -------------------------------------------------------------------------------------------
def _number(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The report of `train` or `backtest` for a person."""
    metrics = report["metrics"]
    if report["command"] == "train":
        training = report["training"]
        lines = [
            f"churn model {report['model_version']} trained on the events up to {report['cutoff']} "
            f"(horizon {report['horizon_days']} days), written to {report.get('model_file', '-')}",
            f"fitted on {training['examples']} examples ({training['positives']} churned) at "
            f"{len(training['snapshots'])} monthly snapshots; held out: {metrics['held_out_snapshot']}",
        ]
    else:
        kind = "a PRIOR (hand-set, not learned)" if report["prior"] else "trained"
        lines = [
            f"churn backtest at {report['cutoff']}, horizon {report['horizon_days']} days, "
            f"model {report['model_version']} ({kind})",
        ]
        if not report["horizon_complete"]:
            lines.append("warning: the events end before the horizon does: later churn is not seen")
    rule, at_rule, decile = metrics["rule"], metrics["model_at_rule_coverage"], metrics["top_decile"]
    lines += [
        f"customers scored: {metrics['examples']}, churned within the horizon: {metrics['positives']} "
        f"(base rate {_number(metrics['base_rate'])})",
        f"ROC AUC: {_number(metrics['roc_auc'])} (the rule alone: {_number(rule['roc_auc'])})",
        f"top decile ({decile['count']} customers): precision {_number(decile['precision'])}, "
        f"lift {_number(decile['lift'], 2)}x over the base rate",
        f'rule "{rule["name"]}": flags {rule["flagged"]}, precision {_number(rule["precision"])}, '
        f"recall {_number(rule['recall'])}",
        f"the model's top {at_rule['count']}: precision {_number(at_rule['precision'])}, "
        f"recall {_number(at_rule['recall'])}; lift over the rule {_number(metrics['lift_over_rule'], 2)}x",
        "calibration by decile of the score:",
        f"  {'decile':>6}  {'customers':>9}  {'predicted':>9}  {'observed':>8}",
        *(
            f"  {row['decile']:>6}  {row['count']:>9}  {row['predicted']:>9.3f}  {row['observed']:>8.3f}"
            for row in metrics["calibration"]
        ),
    ]
    return "\n".join(lines)


# -- argparse ---------------------------------------------------------------------------------------------
def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`signals train` and `signals backtest` under the CLI's subcommands."""
    signals = commands.add_parser("signals", help="train and backtest the churn model on an event export")
    actions = signals.add_subparsers(dest="signals_command", required=True)
    for name, text in (
        ("train", "learn the churn model from the events up to the cutoff and write its artifact"),
        ("backtest", "score the customers live at the cutoff and measure it against who churned"),
    ):
        action = actions.add_parser(name, help=text, description=__doc__)
        action.add_argument(
            "--events", type=Path, required=True, help="Stripe events, one per line (.jsonl or .jsonl.gz)"
        )
        action.add_argument("--cutoff", type=parse_cutoff, required=True, help="YYYY-MM-DD or ISO 8601")
        action.add_argument(
            "--horizon", type=parse_horizon, default=DEFAULT_HORIZON_DAYS, help="e.g. 60d (default 60d)"
        )
        action.add_argument("--format", choices=("table", "json"), default="table", help="output")
        if name == "train":
            action.add_argument("--out", type=Path, required=True, help="where to write the model (JSON)")
        else:
            action.add_argument(
                "--model", type=Path, help="a model artifact (default: config/churn_model.json)"
            )
        action.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.signals_command == "train":
            report = train(args.events, args.out, args.cutoff, args.horizon)
        else:
            report = backtest(args.events, args.model, args.cutoff, args.horizon)
    except MiddlewareError as error:  # a bad file, a bad model, too little history
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.format == "json" else format_report(report))
    return 0
