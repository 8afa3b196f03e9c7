"""The small variant of `make soak`: the same run, fewer deliveries, in every `make test`."""

from __future__ import annotations

import json
import subprocess
import sys


def test_small_soak_loses_nothing_under_faults() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--events", "300", "--seed", "11"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = json.loads(result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert report["lost_valid_events"] == 0 and report["objects_regressed"] == 0
    assert report["recovered_by_catchup"] == report["missed_webhooks"] > 0
    assert report["invalid_requests_enqueued"] == 0 and report["dlq_only_poison"]
    assert sum(report["faults_injected"].values()) > 0  # the faults really happened
    assert report["answers"]["bad_signature"] == {"400": 6}
    dunning = report["dunning"]  # 4 failed invoices, 2 paid after their first step, a 4-stage policy
    assert (dunning["invoices"], dunning["workflows_started"], dunning["paid_after_the_first_step"]) == (
        4,
        4,
        2,
    )
    assert dunning["distinct_steps"] == 2 * 1 + 2 * 4 and dunning["workflows_left_running"] == 0
    assert dunning["commands_sent"] == 0 and dunning["held_back_for_stripe"] == 2 * 2
