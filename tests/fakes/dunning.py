"""In-memory fakes of the dunning ports: the store's view of invoices, subscriptions and churn risk, and
a scheduler with Step Functions' rules for execution names.

`unavailable` names the operations (method names) that raise StoreUnavailableError, as an outage would.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from stripe_middleware.dunning.models import Case
from stripe_middleware.shared.errors import StoreUnavailableError, UnavailableError

Scope = tuple[str | None, bool]  # (account, livemode)


@dataclass
class InMemoryBilling:
    """`dunning.ports.BillingState`: the newest version of each object, per scope, handed back as copies."""

    objects: dict[tuple[str, str | None, bool], dict[str, Any]] = field(default_factory=dict)
    churn: dict[tuple[str, str | None, bool], str] = field(default_factory=dict)  # customer -> level
    unavailable: set[str] = field(default_factory=set)

    def put(self, obj: dict[str, Any], *, account: str | None = None) -> None:
        self.objects[(obj["id"], account, bool(obj.get("livemode")))] = copy.deepcopy(obj)

    def update(
        self, object_id: str, *, account: str | None = None, livemode: bool = False, **fields: Any
    ) -> None:
        self.objects[(object_id, account, livemode)].update(fields)

    def _check(self, operation: str) -> None:
        if operation in self.unavailable:
            raise StoreUnavailableError(f"fake billing state: {operation} is unavailable")

    def invoice(self, invoice_id: str, *, account: str | None, livemode: bool) -> dict[str, Any] | None:
        self._check("invoice")
        found = self.objects.get((invoice_id, account, livemode))
        return copy.deepcopy(found) if found else None

    def subscription(
        self, subscription_id: str, *, account: str | None, livemode: bool
    ) -> dict[str, Any] | None:
        self._check("subscription")
        found = self.objects.get((subscription_id, account, livemode))
        return copy.deepcopy(found) if found else None

    def churn_risk_level(self, customer_id: str, *, account: str | None, livemode: bool) -> str | None:
        self._check("churn_risk_level")
        return self.churn.get((customer_id, account, livemode))


@dataclass
class FakeScheduler:
    """`dunning.ports.Scheduler` with Step Functions' rules: one execution per name; the same name with the
    same input while it runs is that execution again, anything else is ExecutionAlreadyExists."""

    executions: dict[str, str] = field(default_factory=dict)  # name -> input
    running: set[str] = field(default_factory=set)
    fail: bool = False

    def start(self, case: Case) -> bool:
        if self.fail:
            raise UnavailableError("fake scheduler: StartExecution failed")
        execution_input = json.dumps({"case": case.model_dump()}, sort_keys=True)
        name = case.invoice_id
        if name in self.executions:
            return self.executions[name] == execution_input and name in self.running
        self.executions[name] = execution_input
        self.running.add(name)
        return True

    def cases(self) -> list[Case]:
        return [Case.model_validate(json.loads(i)["case"]) for i in self.executions.values()]
