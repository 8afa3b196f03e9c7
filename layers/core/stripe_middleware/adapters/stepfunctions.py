"""`dunning.ports.Scheduler` on Step Functions: one execution per invoice, named by the invoice id.

Step Functions keeps a name for 90 days after its execution ends: the same name with the same input while
it runs returns that execution, any other start raises ExecutionAlreadyExists. Either way the invoice has
its workflow, so both are success here.
"""

from __future__ import annotations

import json
from typing import Any

from stripe_middleware.dunning.models import Case
from stripe_middleware.shared.errors import UnavailableError


class SchedulerUnavailableError(UnavailableError):
    code = "scheduler_unavailable"


class StepFunctionsScheduler:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    def start(self, case: Case) -> bool:
        # The same case always gives the same input, so a redelivered message finds its own execution.
        execution_input = json.dumps({"case": case.model_dump()}, sort_keys=True, separators=(",", ":"))
        try:
            self._client.start_execution(
                stateMachineArn=self._arn, name=case.invoice_id, input=execution_input
            )
        except Exception as error:
            if getattr(error, "response", {}).get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return False
            raise SchedulerUnavailableError(f"StartExecution failed: {type(error).__name__}") from error
        return True
