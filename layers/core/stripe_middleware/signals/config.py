"""The detectors' thresholds (config/signals.yaml), validated at synth and wherever they are loaded."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file

SIGNALS_CONFIG_ENV = "SIGNALS_CONFIG_PATH"


class SignalsConfigError(ConfigurationError):
    pass


class Detector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    actions: ClassVar[frozenset[str]] = frozenset()  # settings that act on a finding, not thresholds
    enabled: bool = True

    def version(self, name: str) -> str:
        """`<name>@<hash of the thresholds>`: an anomaly says which rule and thresholds raised it (turning
        a detector or one of its actions on or off raises the same findings)."""
        values = json.dumps(self.model_dump(exclude={"enabled", *self.actions}), sort_keys=True)
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
    """The same customer charged the same amount in the same currency twice within `window_minutes`.

    `refund` (off by default): each finding also puts a `refunds.create` command for the later charge on
    the bus, which the command gateway runs like any producer's (allowlist, metadata schema, rate limit,
    idempotency on the signal id)."""

    actions: ClassVar[frozenset[str]] = frozenset({"refund"})
    window_minutes: int = Field(default=5, ge=1, le=1440)
    refund: bool = False


class AccountTakeover(Detector):
    """A change of a customer's email or default payment method (or a card attached), then within
    `window_hours` a succeeded charge or a refund with `min_signs` or more signs that someone else pays or
    is paid: a card, or a card country, the customer had not used before the change; an amount at least
    `amount_ratio` times their median before it; a refund of a charge on such a new card; the email change
    itself. Only a customer with `min_history` succeeded charges before the change has a usual to leave."""

    window_hours: int = Field(default=72, ge=1, le=720)
    min_history: int = Field(default=3, ge=1)
    amount_ratio: float = Field(default=3.0, gt=1)
    min_signs: int = Field(default=2, ge=1, le=5)


class PaymentFailureSpike(Detector):
    """On one account, the share of charges that failed within `window_hours` is at least
    `min_rate_percent` and `ratio` times its share in the `baseline_days` before; the window needs
    `min_charges` charges and the baseline `min_baseline_charges`, so a small account does not alarm."""

    window_hours: int = Field(default=24, ge=1, le=168)
    baseline_days: int = Field(default=14, ge=1, le=90)
    min_charges: int = Field(default=30, ge=1)
    min_baseline_charges: int = Field(default=100, ge=1)
    ratio: float = Field(default=3.0, gt=1)
    min_rate_percent: float = Field(default=15.0, gt=0, le=100)


class DisputeSpike(Detector):
    """On one account, disputes opened within `window_days` (at least `min_disputes`) per succeeded charge
    of the same days are at least `min_rate_percent` and `ratio` times the rate of the `baseline_days`
    before; the window needs `min_charges` charges and the baseline `min_baseline_charges`."""

    window_days: int = Field(default=7, ge=1, le=90)
    baseline_days: int = Field(default=56, ge=1, le=300)
    min_disputes: int = Field(default=3, ge=1)
    min_charges: int = Field(default=30, ge=1)
    min_baseline_charges: int = Field(default=100, ge=1)
    ratio: float = Field(default=3.0, gt=1)
    min_rate_percent: float = Field(default=1.0, gt=0, le=100)


class AmountOutlier(Detector):
    """A succeeded charge whose amount is `robust_z` or more spreads from the median of the customer's
    earlier charges in its currency (at least `min_history` of them within `lookback_days`). The spread is
    the median absolute deviation scaled to a standard deviation, and never under `min_spread_percent` of
    the median, so a customer always charged the same amount is not alarmed by a small change."""

    min_history: int = Field(default=5, ge=3)
    lookback_days: int = Field(default=180, ge=1, le=400)
    robust_z: float = Field(default=5.0, gt=0)
    min_spread_percent: float = Field(default=20.0, ge=0, le=100)


class Detectors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    trial_abuse: TrialAbuse = TrialAbuse()
    card_testing: CardTesting = CardTesting()
    duplicate_charge: DuplicateCharge = DuplicateCharge()
    account_takeover: AccountTakeover = AccountTakeover()
    payment_failure_spike: PaymentFailureSpike = PaymentFailureSpike()
    dispute_spike: DisputeSpike = DisputeSpike()
    amount_outlier: AmountOutlier = AmountOutlier()


class RetrainingConfig(BaseModel):
    """The scheduled retraining of the churn model on AWS (signals/retraining.py): every `every_days`, on
    the archived events of the last `window_days`, approved only at `min_auc` or better on held-out data."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    every_days: int = Field(default=7, ge=1, le=31)
    window_days: int = Field(default=400, ge=1, le=1100)
    horizon_days: int = Field(default=60, ge=1, le=365)
    min_auc: float = Field(default=0.6, ge=0.5, le=1.0)

    @model_validator(mode="after")
    def _enough_history(self) -> RetrainingConfig:
        needed = 2 * self.horizon_days + 31  # train_model: two horizons and a month of snapshots
        if self.window_days < needed:
            raise ValueError(
                f"window_days must be at least {needed} for a horizon of {self.horizon_days} days"
            )
        return self


class SignalsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    detectors: Detectors = Detectors()
    retraining: RetrainingConfig = RetrainingConfig()

    def account_lookback_seconds(self) -> int:
        """How far before a new fact the account-level detectors look (their window and baseline): an
        account's facts are read from there on, not from the beginning (an account holds every charge)."""
        d = self.detectors
        return max(
            d.card_testing.window_minutes * 60,
            d.payment_failure_spike.window_hours * 3600 + d.payment_failure_spike.baseline_days * 86_400,
            (d.dispute_spike.window_days + d.dispute_spike.baseline_days) * 86_400,
        )


@cache
def load_signals_config(path: Path | None = None) -> SignalsConfig:
    path = path or config_file(SIGNALS_CONFIG_ENV, "signals.yaml")
    try:
        return SignalsConfig.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise SignalsConfigError(f"signals config {path} is invalid:\n{error}") from error
