"""The retraining Lambda on moto S3: it reads the event archive as Firehose writes it (gzipped JSON lines
under events/YYYY/MM/DD/HH/), writes the candidate, and the signals Lambda then scores with the approved
model."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stripe_middleware.adapters.s3 import archive_prefix
from stripe_middleware.shared.errors import RejectedError
from stripe_middleware.signals.churn import ChurnModel, load_churn_model
from stripe_middleware.signals.retraining import APPROVED_KEY, candidate_key, report_key
from stripe_middleware.signals.training import detail_of
from stripe_middleware_dev.simulate import simulate
from tests.integration.conftest import LambdaContext

BUCKET = "warehouse"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("MODEL_BUCKET_NAME", BUCKET)
        yield client


def archive(s3: Any, events: list[dict[str, Any]]) -> None:
    """The published details as Firehose files: one per arrival hour (arrival = the event's time)."""
    files: dict[str, list[str]] = defaultdict(list)
    for event in events:
        found = detail_of(event)
        assert found is not None
        files[archive_prefix(event["created"])].append(json.dumps(found[1]))
    for prefix, lines in files.items():
        body = gzip.compress(("\n".join(lines) + "\n").encode())
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}stream-1-{prefix[7:].replace('/', '-')}x.gz", Body=body)


def retrain(event: dict[str, Any]) -> dict[str, Any]:
    from functions.retrain.handler import handler

    return handler(event, LambdaContext())


def test_a_scheduled_retraining_approves_a_better_model_and_the_signals_lambda_scores_with_it(
    s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    events = simulate(300, 8, 3, datetime(2025, 1, 1), attacks={}).events
    archive(s3, events)
    s3.put_object(Bucket=BUCKET, Key=archive_prefix(events[0]["created"]) + "corrupt.gz", Body=b"\x1f\x8bnot")
    s3.put_object(Bucket=BUCKET, Key=archive_prefix(events[0]["created"]) + "plain", Body=b"not json\n{}\n")
    cutoff = max(e["created"] for e in events)

    summary = retrain({"cutoff": cutoff})

    assert summary["status"] == "approved", summary["reason"]
    assert summary["events"] == len(events)
    assert summary["skipped_lines"] == 3  # the corrupt file, the line that is not JSON, and `{}`: no event
    approved = s3.get_object(Bucket=BUCKET, Key=APPROVED_KEY)["Body"].read().decode()
    model = ChurnModel.model_validate_json(approved)
    assert model.version == summary["candidate"] and not model.prior
    for key in (candidate_key(model.version), report_key(model.version)):
        s3.head_object(Bucket=BUCKET, Key=key)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [metrics] = [line for line in logged if "ChurnModelRetrainings" in line]
    assert metrics["outcome"] == "approved" and metrics["ChurnModelTrainingEvents"] == [len(events)]

    from functions.signals import handler as signals

    signals.model_in_use.cache_clear()
    in_use = signals.model_in_use()
    assert in_use is not None and in_use.get().version == model.version
    signals.model_in_use.cache_clear()


def test_an_archive_with_too_little_history_skips_and_the_prior_keeps_scoring(s3: Any) -> None:
    events = simulate(20, 2, 3, datetime(2025, 1, 1), attacks={}).events
    archive(s3, events)
    summary = retrain({"cutoff": max(e["created"] for e in events)})
    assert summary["status"] == "skipped" and "days of history" in summary["reason"]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="models/")

    from functions.signals import handler as signals

    signals.model_in_use.cache_clear()
    in_use = signals.model_in_use()
    assert in_use is not None and in_use.get() == load_churn_model()
    signals.model_in_use.cache_clear()


@pytest.mark.parametrize("cutoff", ["2025-01-01", 0, True, 4_000_000_000])
def test_a_bad_cutoff_is_rejected(s3: Any, cutoff: Any) -> None:
    with pytest.raises(RejectedError, match="`cutoff` must be a past unix time"):
        retrain({"cutoff": cutoff})
