"""Reading configuration once per container: environment variables and the packaged config files.

Each context keeps its own settings dataclass next to its logic; these are the helpers they share.
Dataclasses rather than pydantic keep the ingest cold start small.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stripe_middleware.shared.errors import ConfigurationError

# The layer copies config/*.yaml next to this package (`/opt/python/stripe_middleware/` on Lambda).
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parents[1]


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigurationError(f"environment variable {name} must be a positive integer, got {raw!r}")
    return int(raw)


def config_file(env_name: str, file_name: str, env: Mapping[str, str] = os.environ) -> Path:
    """The config file named by `env_name`, else the copy the layer packaged next to the library."""
    configured = optional(env, env_name)
    return Path(configured) if configured else PACKAGED_CONFIG_DIR / file_name
