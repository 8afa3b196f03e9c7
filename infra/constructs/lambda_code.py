"""Lambda packaging without Docker: the shared layer is built with pip for arm64 / Python 3.13.

`layers/core/stripe_middleware` (our library, all of it: dev tools live outside it) and the runtime
dependencies of pyproject.toml (exported from uv.lock, so the layer runs exactly the tested versions) are
installed into `python/` of one layer, with the config files next to the library.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "core" / "stripe_middleware"
RUNTIME = lambda_.Runtime.PYTHON_3_13
METADATA_SCHEMA = ROOT / "config" / "metadata_schema.yaml"
GATEWAY_CONFIG = ROOT / "config" / "gateway.yaml"
SIGNALS_CONFIG = ROOT / "config" / "signals.yaml"
CHURN_MODEL = ROOT / "config" / "churn_model.json"
BUYERS_MODEL = ROOT / "config" / "buyers_model.json"
CONFIG_FILES = (METADATA_SCHEMA, GATEWAY_CONFIG, SIGNALS_CONFIG, CHURN_MODEL, BUYERS_MODEL)
# Where the layer puts the schema inside the function (layers are mounted at /opt).
PACKAGED_METADATA_SCHEMA = "/opt/python/stripe_middleware/metadata_schema.yaml"
PACKAGED_GATEWAY_CONFIG = "/opt/python/stripe_middleware/gateway.yaml"
ARCHITECTURE = lambda_.Architecture.ARM_64


@jsii.implements(ILocalBundling)
class _PipLayerBundler:
    def try_bundle(self, output_dir: str, options: Any) -> bool:
        target = Path(output_dir) / "python"
        requirements = Path(output_dir) / "requirements.txt"
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                sys.executable,
                "-m",
                "uv",
                "export",
                "--frozen",
                "--no-dev",
                "--no-hashes",
                "--no-emit-project",
                "--quiet",
                "--output-file",
                str(requirements),
            ],
            cwd=ROOT,
            check=True,
        )
        subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-m",
                "uv",
                "pip",
                "install",
                "--quiet",
                "--requirement",
                str(requirements),
                "--target",
                str(target),
                "--python-platform",
                "aarch64-manylinux2014",
                "--python-version",
                "3.13",
                "--only-binary",
                ":all:",
            ],
            cwd=ROOT,
            check=True,
        )
        requirements.unlink()
        copy_library(target)
        return True


def copy_library(target: Path) -> None:
    """Our library and its config files into `target` (the layer's `python/`)."""
    package = target / "stripe_middleware"
    for module in library_modules():
        destination = package / module.relative_to(LIBRARY)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(module, destination)
    for config in CONFIG_FILES:  # next to the library, where shared/settings.py looks for them
        shutil.copy(config, package / config.name)


def library_modules() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def layer_hash() -> str:
    """The layer (and so every function) changes only when shipped code, config or the lock file does."""
    digest = hashlib.sha256()
    for path in (*library_modules(), *CONFIG_FILES, ROOT / "uv.lock"):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def shared_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="stripe-middleware core library and its runtime dependencies",
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        removal_policy=RemovalPolicy.DESTROY,
        code=lambda_.Code.from_asset(
            str(ROOT / "layers"),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=layer_hash(),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-local-bundling-only"),
                # jsii calls try_bundle(output_dir, options) positionally, unlike the typed stub.
                local=_PipLayerBundler(),  # type: ignore[arg-type]
            ),
        ),
    )


def function_code(name: str) -> lambda_.Code:
    """The thin handler folder `functions/<name>/`."""
    return lambda_.Code.from_asset(str(ROOT / "functions" / name), exclude=["**/__pycache__"])
