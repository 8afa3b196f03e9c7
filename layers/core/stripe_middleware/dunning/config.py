"""The dunning policy (config/dunning.yaml), validated at synth and wherever it is loaded."""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file

DUNNING_CONFIG_ENV = "DUNNING_CONFIG_PATH"
DAY = 86_400

FinalAction = Literal["leave", "cancel_subscription", "mark_uncollectible"]
RETRY_OPERATION = "invoices.pay"
# The gateway operation each final action sends (`leave` sends none).
ACTION_OPERATIONS: dict[str, str] = {
    "cancel_subscription": "subscriptions.cancel",
    "mark_uncollectible": "invoices.mark_uncollectible",
}


class DunningConfigError(ConfigurationError):
    pass


class Step(BaseModel):
    """At `day` days after the failed payment: check the store, emit the step event, and retry the payment
    through the gateway when `retry` is on and Stripe is not retrying the invoice itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    day: int = Field(ge=1, le=90)
    retry: bool = False


class Final(BaseModel):
    """At `day` days after the failed payment, after the last step: the final action, and its event."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    day: int = Field(ge=1, le=120)
    action: FinalAction = "leave"


class Stage(BaseModel):
    """One stage of a workflow as the state machine (or the local clock) runs it: a step, or the final one.

    Built from the config at synth and passed to the step function with each invocation, so a workflow
    runs to its end with the policy it started with, whatever is deployed meanwhile."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attempt: int = Field(ge=1)  # 1.. for the steps; the final stage is steps + 1
    steps: int = Field(ge=1)
    day: int = Field(ge=1)
    retry: bool = False
    action: FinalAction | None = None  # the final stage's action; None for a step

    @property
    def final(self) -> bool:
        return self.action is not None

    @property
    def name(self) -> str:
        return "final" if self.final else "step"


class DunningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    enabled: bool = True
    steps: tuple[Step, ...] = Field(min_length=1, max_length=12)
    # detect: Stripe retries an invoice whose `next_payment_attempt` is set, and then the middleware never
    # does; assume_on: Stripe's retries are on for every invoice, so the middleware never retries at all.
    stripe_retries: Literal["detect", "assume_on"] = "detect"
    final: Final

    @model_validator(mode="after")
    def _in_order(self) -> DunningConfig:
        days = [s.day for s in self.steps]
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError(f"step days must increase strictly, got {days}")
        if self.final.day <= days[-1]:
            raise ValueError(f"final.day ({self.final.day}) must come after the last step (day {days[-1]})")
        if self.stripe_retries == "assume_on" and any(s.retry for s in self.steps):
            raise ValueError("retry: true never runs with stripe_retries: assume_on; turn one of them off")
        return self

    def stages(self) -> tuple[Stage, ...]:
        """The steps in order, then the final stage."""
        count = len(self.steps)
        steps = [Stage(attempt=n, steps=count, day=s.day, retry=s.retry) for n, s in enumerate(self.steps, 1)]
        return (*steps, Stage(attempt=count + 1, steps=count, day=self.final.day, action=self.final.action))

    def operations(self) -> set[str]:
        """The gateway operations this policy can send (each must be in config/gateway.yaml's allowlist)."""
        found = {RETRY_OPERATION} if any(s.retry for s in self.steps) else set()
        operation = ACTION_OPERATIONS.get(self.final.action)
        return found | ({operation} if operation else set())


def waits(stages: tuple[Stage, ...]) -> list[tuple[Stage, int]]:
    """Each stage with the seconds to wait before it: from the start for the first, then from the one
    before (the state machine's Wait states)."""
    days = [0, *(s.day for s in stages)]
    return [(stage, (days[n + 1] - days[n]) * DAY) for n, stage in enumerate(stages)]


@cache
def load_dunning_config(path: Path | None = None) -> DunningConfig:
    path = path or config_file(DUNNING_CONFIG_ENV, "dunning.yaml")
    try:
        return DunningConfig.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise DunningConfigError(f"dunning config {path} is invalid:\n{error}") from error
