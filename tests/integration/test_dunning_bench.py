"""The small variant of `make bench`'s dunning measure, so it cannot rot: every invoice gets one workflow
whatever the duplicates, every stage runs and publishes one step, the transitions are counted on the
synthesized state machine, and the cost model prices what was measured. Speed is judged in the bench."""

from __future__ import annotations

import pytest

from bench import cost, dunning_bench
from stripe_middleware.dunning.config import load_dunning_config
from tests.infra.conftest import synthesized

STAGES = len(load_dunning_config().stages())


@pytest.fixture(scope="module")
def definition() -> dict[str, object]:
    return dunning_bench.state_machine_definition(synthesized("dev").json())


def test_a_workflow_takes_three_transitions_a_stage_or_four_when_the_first_step_stops_it(
    definition: dict[str, object],
) -> None:
    # Wait, step, choice for each stage; the final stage's wait, step and Succeed; stopped: Stopped.
    assert dunning_bench.transitions(definition) == 3 * STAGES
    assert dunning_bench.transitions(definition, stop_after=1) == 4
    assert dunning_bench.transitions(definition, stop_after=2) == 7


def test_a_small_dunning_run_starts_one_workflow_per_invoice_and_runs_every_stage_once(
    definition: dict[str, object],
) -> None:
    result = dunning_bench.run(invoices=12, definition=definition)
    starter, steps = result["starter"], result["steps"]
    assert result["failure_deliveries"] > result["failure_events"] == 24  # duplicates delivered
    assert result["published_failures"] == 24  # the processor publishes each event once
    assert (starter["executions"], starter["start_execution_calls"]) == (
        12,
        24,
    )  # the second failure: no new one
    assert (steps["ran"], steps["finished"]) == (12 * STAGES, 12)
    assert steps["dynamodb_reads_per_step"] == 3  # the invoice, its subscription, the churn risk
    assert steps["put_events_entries_per_step"] == 1  # the step event (the policy sends no command)
    assert result["transitions"] == {"whole_policy": 3 * STAGES, "stopped_by_the_first_step": 4}
    priced = cost.dunning_per_thousand(result, {"total_usd_per_million_unique_events": 2.0})
    lines = priced["lines_usd_per_thousand_invoices"]
    assert lines["step_functions"] == pytest.approx(3 * STAGES * 0.025, abs=1e-4)
    assert priced["total_usd_per_thousand_invoices"] == pytest.approx(sum(lines.values()), abs=1e-3)
    assert priced["pipeline_usd_per_thousand_invoices"] == pytest.approx(2 * 2.0 / 1000)
