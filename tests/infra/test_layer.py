"""The layer ships exactly the library and its config, finds that config where it put it, and changes
only when shipped code, config or the lock file does. (`make synth` runs the full pip build.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.constructs import lambda_code
from infra.constructs.lambda_code import LIBRARY, ROOT, copy_library, layer_hash


def test_the_layer_holds_the_whole_library_and_its_config_and_nothing_else(tmp_path: Path) -> None:
    copy_library(tmp_path)
    shipped = {p.relative_to(tmp_path / "stripe_middleware") for p in tmp_path.rglob("*") if p.is_file()}
    library = {p.relative_to(LIBRARY) for p in LIBRARY.rglob("*.py")}
    configs = {
        "metadata_schema.yaml",
        "gateway.yaml",
        "signals.yaml",
        "churn_model.json",
        "buyers_model.json",
    }
    assert shipped == library | {Path(name) for name in configs}
    assert {p.parts[0] for p in library} >= {
        "shared",
        "ingest",
        "processing",
        "read",
        "commands",
        "backfill",
        "signals",
        "adapters",
    }


def test_the_packaged_library_reads_its_packaged_config(tmp_path: Path) -> None:
    copy_library(tmp_path)
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import stripe_middleware\n"
        "from stripe_middleware.shared.metadata_schema import load_metadata_schema\n"
        "from stripe_middleware.commands.config import load_gateway_config\n"
        "from stripe_middleware.signals.config import load_signals_config\n"
        "print(stripe_middleware.__file__, load_metadata_schema().version, load_gateway_config().version,"
        " load_signals_config().version)"
    )
    env = {"PATH": "/usr/bin:/bin"}  # no METADATA_SCHEMA_PATH / GATEWAY_CONFIG_PATH, as on Lambda
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith(str(tmp_path))


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for part in ("layers/core/stripe_middleware", "config", "stripe_middleware_dev", "functions/ingest"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "uv.lock", tmp_path / "uv.lock")
    monkeypatch.setattr(lambda_code, "ROOT", tmp_path)
    monkeypatch.setattr(lambda_code, "LIBRARY", tmp_path / "layers/core/stripe_middleware")
    configs = tuple(tmp_path / "config" / p.name for p in lambda_code.CONFIG_FILES)
    monkeypatch.setattr(lambda_code, "CONFIG_FILES", configs)
    return tmp_path


@pytest.mark.parametrize(
    ("changed", "moves"),
    [
        ("stripe_middleware_dev/cli.py", False),
        ("functions/ingest/handler.py", False),  # functions are their own assets
        ("layers/core/stripe_middleware/ingest/webhook.py", True),
        ("config/metadata_schema.yaml", True),
        ("config/signals.yaml", True),
        ("uv.lock", True),
    ],
)
def test_the_layer_hash_moves_only_with_shipped_inputs(repo_copy: Path, changed: str, moves: bool) -> None:
    before = layer_hash()
    assert layer_hash() == before  # reproducible
    with (repo_copy / changed).open("a") as file:
        file.write("\n# edited\n")
    assert (layer_hash() != before) is moves
