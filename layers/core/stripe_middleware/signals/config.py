"""The detectors' thresholds (config/signals.yaml), validated at synth and wherever they are loaded."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file

SIGNALS_CONFIG_ENV = "SIGNALS_CONFIG_PATH"


class SignalsConfigError(ConfigurationError):
    pass


class Detector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True

    def version(self, name: str) -> str:
        """`<name>@<hash of the thresholds>`: an anomaly says which rule and thresholds raised it."""
        values = json.dumps(self.model_dump(exclude={"enabled"}), sort_keys=True)
        return f"{name}@{hashlib.sha256(values.encode()).hexdigest()[:8]}"


class TrialAbuse(Detector):
    """One card fingerprint behind the trials (or first invoices) of `customers` or more customers
    within `window_days`."""

    customers: int = Field(default=3, ge=2)
    window_days: int = Field(default=30, ge=1, le=365)


class CardTesting(Detector):
    """On one account, within `window_minutes`: `failures` or more failed charges of at most
    `max_amount` (minor units), on `fingerprints` or more distinct cards."""

    failures: int = Field(default=5, ge=2)
    fingerprints: int = Field(default=3, ge=1)
    max_amount: int = Field(default=500, ge=1)
    window_minutes: int = Field(default=10, ge=1, le=1440)


class DuplicateCharge(Detector):
    """The same customer charged the same amount in the same currency twice within `window_minutes`."""

    window_minutes: int = Field(default=5, ge=1, le=1440)


class Detectors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trial_abuse: TrialAbuse = TrialAbuse()
    card_testing: CardTesting = CardTesting()
    duplicate_charge: DuplicateCharge = DuplicateCharge()


class SignalsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    detectors: Detectors = Detectors()


@cache
def load_signals_config(path: Path | None = None) -> SignalsConfig:
    path = path or config_file(SIGNALS_CONFIG_ENV, "signals.yaml")
    try:
        return SignalsConfig.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise SignalsConfigError(f"signals config {path} is invalid:\n{error}") from error
