"""The declarative, versioned metadata schema (config/metadata_schema.yaml) and its checks.

Shared by processing (flags violations on stored objects) and commands (refuses violating writes).

Loaded and validated once at cold start (and by `cdk synth` and the tests), so a broken file fails the
build with a clear message instead of failing events at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stripe_middleware.shared.errors import ConfigurationError
from stripe_middleware.shared.settings import config_file

SCHEMA_PATH_ENV = "METADATA_SCHEMA_PATH"

Normalization = Literal["trim", "lower", "upper"]


class MetadataSchemaError(ConfigurationError):
    """The schema file is missing or invalid."""


class KeyRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None
    normalize: tuple[Normalization, ...] = ()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"pattern {value!r} is not a valid regular expression: {error}") from error
        return value


class ObjectRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    additional: bool = True


class Violation(BaseModel):
    model_config = ConfigDict(frozen=True)
    key: str
    code: Literal["missing", "pattern", "not_allowed", "unknown_key"]
    message: str


class MetadataSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = Field(ge=1)
    keys: dict[str, KeyRule] = {}
    objects: dict[str, ObjectRule] = {}

    @model_validator(mode="after")
    def _keys_are_declared(self) -> MetadataSchema:
        for object_type, rule in self.objects.items():
            for key in (*rule.required, *rule.optional):
                if key not in self.keys:
                    raise ValueError(
                        f"objects.{object_type} names key {key!r} that is not declared under keys"
                    )
        return self

    def normalize(self, object_type: str, metadata: Mapping[str, Any]) -> dict[str, str]:
        """Apply the declared normalizations (trim, case) to the keys that have a rule, whatever the object
        type: a key means the same on every object (a charge's campaign is attributed with the payment
        intent's), so its normalization does not depend on `objects`; only `check` does."""
        result = {str(k): "" if v is None else str(v) for k, v in metadata.items()}
        steps: dict[str, Callable[[str], str]] = {"trim": str.strip, "lower": str.lower, "upper": str.upper}
        for key, rule in self.keys.items():
            if key in result:
                for step in rule.normalize:
                    result[key] = steps[step](result[key])
        return result

    def check(self, object_type: str, metadata: Mapping[str, Any]) -> list[Violation]:
        """Violations of the (normalized) metadata of one object; object types without a rule have none."""
        rule = self.objects.get(object_type)
        if rule is None:
            return []
        values = self.normalize(object_type, metadata)
        violations = [
            Violation(key=key, code="missing", message=f"{object_type} requires metadata key {key!r}")
            for key in rule.required
            if not values.get(key)
        ]
        declared = {*rule.required, *rule.optional}
        for key, value in values.items():
            key_rule = self.keys.get(key) if key in declared else None
            if key not in declared:
                if not rule.additional:
                    violations.append(
                        Violation(key=key, code="unknown_key", message=f"{object_type} allows no key {key!r}")
                    )
                continue
            assert key_rule is not None
            if not value:
                continue
            if key_rule.allowed is not None and value not in key_rule.allowed:
                violations.append(
                    Violation(
                        key=key, code="not_allowed", message=f"{key} must be one of {list(key_rule.allowed)}"
                    )
                )
            if key_rule.pattern is not None and not re.fullmatch(key_rule.pattern, value):
                violations.append(
                    Violation(key=key, code="pattern", message=f"{key} does not match {key_rule.pattern}")
                )
        return violations


def parse_metadata_schema(text: str, source: str = "metadata schema") -> MetadataSchema:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MetadataSchemaError(f"{source} is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise MetadataSchemaError(f"{source} must be a mapping with version, keys and objects")
    try:
        return MetadataSchema.model_validate(document)
    except ValidationError as error:
        raise MetadataSchemaError(f"{source} is invalid:\n{error}") from error


@cache
def load_metadata_schema(path: Path | None = None) -> MetadataSchema:
    path = path or config_file(SCHEMA_PATH_ENV, "metadata_schema.yaml")
    try:
        text = path.read_text()
    except OSError as error:
        raise MetadataSchemaError(f"cannot read metadata schema {path}: {error}") from error
    return parse_metadata_schema(text, str(path))
