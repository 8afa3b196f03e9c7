"""The gateway's config file (config/gateway.yaml): allowed operations, the shared rate limit, attempts."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stripe_middleware.commands.operations import OPERATIONS
from stripe_middleware.shared.contract import mode_label
from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file

GATEWAY_CONFIG_ENV = "GATEWAY_CONFIG_PATH"


class GatewayConfigError(ConfigurationError):
    pass


class RateLimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    share: float = Field(gt=0, le=1)
    read_share: float = Field(default=0.5, gt=0, le=1)
    live_per_second: int = Field(gt=0)
    test_per_second: int = Field(gt=0)
    per_endpoint_per_second: int = Field(gt=0)

    def limits(self, livemode: bool) -> tuple[int, int]:
        """(account-wide, per-endpoint) requests per second the gateway may use."""
        account = self.live_per_second if livemode else self.test_per_second
        return max(1, int(account * self.share)), max(1, int(self.per_endpoint_per_second * self.share))

    def read_limits(self, livemode: bool, endpoint: str) -> list[tuple[str, int]]:
        """The limiter keys a read of `endpoint` takes: the account's, the reads' share, the endpoint's."""
        account, per_endpoint = self.limits(livemode)
        mode = mode_label(livemode)
        return [
            (mode, account),
            (f"{mode}:read", max(1, int(account * self.read_share))),
            (f"{mode}:GET {endpoint}", per_endpoint),
        ]


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    operations: tuple[str, ...]
    rate_limit: RateLimitConfig
    max_attempts: int = Field(ge=1, le=50)

    @field_validator("operations")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(names) - set(OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operations {unknown}; known: {sorted(OPERATIONS)}")
        return names


@cache
def load_gateway_config(path: Path | None = None) -> GatewayConfig:
    path = path or config_file(GATEWAY_CONFIG_ENV, "gateway.yaml")
    try:
        return GatewayConfig.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise GatewayConfigError(f"gateway config {path} is invalid:\n{error}") from error
