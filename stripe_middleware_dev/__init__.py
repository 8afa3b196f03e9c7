"""Developer tools, never shipped to Lambda: the `stripe-middleware` CLI, local mode, test and bench support.

They run from the repository (an editable install puts the repository root and `layers/core` on the path)
and may use everything in it: the CDK app (`infra`), the sample events (`events`) and the handlers.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# On Lambda the layer carries these files; on this machine the repository's copies are the ones in use.
REPO_CONFIG = {
    "METADATA_SCHEMA_PATH": str(REPO_ROOT / "config" / "metadata_schema.yaml"),
    "GATEWAY_CONFIG_PATH": str(REPO_ROOT / "config" / "gateway.yaml"),
    "SIGNALS_CONFIG_PATH": str(REPO_ROOT / "config" / "signals.yaml"),
    "CHURN_MODEL_PATH": str(REPO_ROOT / "config" / "churn_model.json"),
    "BUYERS_MODEL_PATH": str(REPO_ROOT / "config" / "buyers_model.json"),
    "DUNNING_CONFIG_PATH": str(REPO_ROOT / "config" / "dunning.yaml"),
}


def use_repo_config() -> None:
    """Point the library's config lookups at the repository's config/ (unless already set)."""
    for name, value in REPO_CONFIG.items():
        os.environ.setdefault(name, value)
