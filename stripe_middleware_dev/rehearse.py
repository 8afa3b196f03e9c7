"""`stripe-middleware rehearse`: what a Stripe API version upgrade would change, before it is made.

For a sample of stored objects of each type, fetch each from Stripe twice, with the pinned version
(`STRIPE_API_VERSION`) and with the candidate, and report per type:

- raw fields that appear, disappear or change JSON type (flattened key paths: `discounts[]`,
  `customer_address.city`);
- changes to the normalized attributes the store keeps and every detail publishes;
- published details (the Stripe-event detail and the metadata-violation detail the processor would build)
  that would no longer validate against their registered JSON Schemas, or that the processor could not
  build at all;
- metadata-schema effects: violations the candidate adds or resolves.

Exit 2 when a published contract would break (a schema failure, a normalized attribute that disappears or
changes type, or an object identity that changes), 1 when the rehearsal could not run or some objects
could not be read, 0 otherwise. The comparison (`compare`, `report`, `render_table`) is pure: it takes the
two raw objects and touches no network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from events import detail_schema
from stripe_middleware.processing.models import StoredObject, StripeEvent
from stripe_middleware.processing.normalize import normalize, object_identity
from stripe_middleware.processing.processor import build_detail, violation_detail
from stripe_middleware.shared.contract import STRIPE_API_VERSION, DetailType
from stripe_middleware.shared.metadata_schema import MetadataSchema
from stripe_middleware_dev import targets

DEFAULT_SAMPLE = 20
EXIT_OK, EXIT_INCOMPLETE, EXIT_BREAKING = 0, 1, 2
REHEARSAL_EVENT_ID = "evt_rehearsal"
# An object keeps its store key only while these stay equal: a change re-keys it (a new item, a new object).
IDENTITY_ATTRIBUTES = frozenset({"object_type", "object_id"})
# StoredObject fields that are not normalized attributes of the object (metadata violations are reported
# as metadata effects, metadata itself per key, which covers `attribution`: a copy of four of its keys).
NOT_COMPARED = frozenset(
    {
        "object",
        "order_key",
        "event_id",
        "event_type",
        "event_created",
        "metadata",
        "metadata_violations",
        "attribution",
    }
)
MAX_CELL = 70

DetailSchemas = Callable[[str], Mapping[str, Any]]
FieldKind = Literal["appeared", "disappeared", "type_changed"]
AttributeKind = Literal["appeared", "disappeared", "type_changed", "value_changed"]


# -- flattening --------------------------------------------------------------------------------------
_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int in Python
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    ((list, tuple), "array"),
    (dict, "object"),
)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__)


def flatten(value: Any) -> dict[str, str]:
    """Key path -> JSON type(s) of a raw object: `a.b` for nested fields, `a[]` for the items of a list
    (the items' types merged, `object|string` when they differ). The root itself has no path."""
    found: dict[str, set[str]] = {}

    def walk(item: Any, path: str) -> None:
        if path:
            found.setdefault(path, set()).add(json_type(item))
        if isinstance(item, dict):
            for key, child in item.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(item, list | tuple):
            for child in item:
                walk(child, f"{path}[]")

    walk(value, "")
    return {path: "|".join(sorted(types)) for path, types in found.items()}


# -- one object ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldChange:
    kind: FieldKind
    path: str
    pinned: str | None  # JSON type(s); None when absent
    candidate: str | None


@dataclass(frozen=True)
class AttributeChange:
    kind: AttributeKind
    attribute: str  # a StoredObject field, or `metadata.<key>`
    pinned: Any
    candidate: Any
    breaking: bool


@dataclass(frozen=True)
class SchemaFailure:
    detail_type: str
    path: str  # where in the detail (`normalized/amount`), or `(processor)` when it could not be built
    rule: str  # the JSON Schema keyword that failed (`type`, `required`, ...) or `processor`
    message: str


@dataclass(frozen=True)
class ViolationChange:
    change: Literal["added", "resolved"]
    key: str
    code: str


@dataclass
class ObjectDiff:
    object_type: str
    object_id: str
    status: Literal["compared", "gone", "error"] = "compared"
    error: str | None = None
    fields: list[FieldChange] = field(default_factory=list)
    normalized: list[AttributeChange] = field(default_factory=list)
    schema_failures: list[SchemaFailure] = field(default_factory=list)  # new with the candidate only
    metadata: list[ViolationChange] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return bool(self.schema_failures) or any(c.breaking for c in self.normalized)


def compare_fields(pinned: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[FieldChange]:
    before, after = flatten(dict(pinned)), flatten(dict(candidate))
    changes = [FieldChange("appeared", p, None, after[p]) for p in after if p not in before]
    changes += [FieldChange("disappeared", p, before[p], None) for p in before if p not in after]
    changes += [
        FieldChange("type_changed", p, before[p], after[p])
        for p in before
        if p in after and before[p] != after[p]
    ]
    return sorted(changes, key=lambda c: (c.kind, c.path))


def _attributes(stored: StoredObject) -> dict[str, Any]:
    values = {k: v for k, v in stored.model_dump(mode="json").items() if k not in NOT_COMPARED}
    values |= {f"metadata.{key}": value for key, value in stored.metadata.items()}
    return values


def compare_attributes(pinned: StoredObject, candidate: StoredObject) -> list[AttributeChange]:
    """Normalized attributes: gone or retyped is breaking (subscribers and the read API rely on them),
    a new value only when it re-keys the object (`object_type`, `object_id`)."""
    before, after = _attributes(pinned), _attributes(candidate)
    changes: list[AttributeChange] = []
    for name in sorted({*before, *after}):
        old, new = before.get(name), after.get(name)
        if old is None and new is None:
            continue
        if old is None:
            changes.append(AttributeChange("appeared", name, old, new, breaking=name in IDENTITY_ATTRIBUTES))
        elif new is None:
            changes.append(AttributeChange("disappeared", name, old, new, breaking=True))
        elif json_type(old) != json_type(new):
            changes.append(AttributeChange("type_changed", name, old, new, breaking=True))
        elif old != new:
            changes.append(
                AttributeChange("value_changed", name, old, new, breaking=name in IDENTITY_ATTRIBUTES)
            )
    return changes


def compare_violations(pinned: StoredObject, candidate: StoredObject) -> list[ViolationChange]:
    before = {(v["key"], v["code"]) for v in pinned.metadata_violations}
    after = {(v["key"], v["code"]) for v in candidate.metadata_violations}
    return [ViolationChange("added", k, c) for k, c in sorted(after - before)] + [
        ViolationChange("resolved", k, c) for k, c in sorted(before - after)
    ]


def synthetic_event(
    obj: Mapping[str, Any], *, api_version: str, account: str | None, event_type: str | None = None
) -> StripeEvent:
    """The event the processor would receive with `obj` in it (`<type>.updated` unless told)."""
    object_type, _ = object_identity(dict(obj))
    return StripeEvent.model_validate(
        {
            "id": REHEARSAL_EVENT_ID,
            "object": "event",
            "type": event_type or f"{object_type}.updated",
            "created": int(time.time()),
            "livemode": obj.get("livemode") is True,
            "account": account,
            "api_version": api_version,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": dict(obj)},
        }
    )


def validate_detail(
    detail_type: str, detail: Mapping[str, Any], detail_schemas: DetailSchemas = detail_schema
) -> list[SchemaFailure]:
    from jsonschema.validators import validator_for

    schema = detail_schemas(detail_type)
    validator = validator_for(schema)(schema)
    return [
        SchemaFailure(
            detail_type if detail_type.startswith("stripe-middleware.") else "stripe-event",
            "/".join(str(p) for p in error.absolute_path) or "(root)",
            str(error.validator),
            _clip(error.message, 200),
        )
        for error in sorted(validator.iter_errors(detail), key=lambda e: list(map(str, e.absolute_path)))
    ]


def published(
    obj: Mapping[str, Any],
    schema: MetadataSchema,
    *,
    api_version: str,
    account: str | None = None,
    event_type: str | None = None,
    detail_schemas: DetailSchemas = detail_schema,
) -> tuple[StoredObject | None, list[SchemaFailure]]:
    """What the processor would store and publish for `obj`, and how its details fail their schemas."""
    try:
        event = synthetic_event(obj, api_version=api_version, account=account, event_type=event_type)
        stored = normalize(event, schema)
        detail = build_detail(event, stored, stale=False, redelivered=False)
        violations = violation_detail(event, stored) if stored.metadata_violations else None
    except Exception as error:  # the processor would fail the message: that is a broken contract too
        message = f"the processor cannot build the detail: {type(error).__name__}: {error}"
        return None, [SchemaFailure(event_type or "stripe-event", "(processor)", "processor", message)]
    failures = validate_detail(event.type, detail, detail_schemas)
    if violations is not None:
        failures += validate_detail(DetailType.METADATA_VIOLATION, violations, detail_schemas)
    return stored, failures


def compare(
    pinned: Mapping[str, Any],
    candidate: Mapping[str, Any],
    schema: MetadataSchema,
    *,
    pinned_version: str = STRIPE_API_VERSION,
    candidate_version: str = "candidate",
    account: str | None = None,
    event_type: str | None = None,
    detail_schemas: DetailSchemas = detail_schema,
) -> ObjectDiff:
    """One object as Stripe renders it in the pinned and in the candidate version."""
    object_type, object_id = object_identity(dict(pinned))
    diff = ObjectDiff(object_type, object_id, fields=compare_fields(pinned, candidate))
    options: dict[str, Any] = {"account": account, "event_type": event_type, "detail_schemas": detail_schemas}
    before, old_failures = published(pinned, schema, api_version=pinned_version, **options)
    after, new_failures = published(candidate, schema, api_version=candidate_version, **options)
    known = {(f.detail_type, f.path, f.rule) for f in old_failures}
    diff.schema_failures = [f for f in new_failures if (f.detail_type, f.path, f.rule) not in known]
    if before is not None and after is not None:
        diff.normalized = compare_attributes(before, after)
        diff.metadata = compare_violations(before, after)
    return diff


# -- the report ----------------------------------------------------------------------------------------
@dataclass
class Row:
    """One aggregated line of a type's report: what changed, where, and in how many sampled objects."""

    section: Literal["field", "normalized", "schema", "metadata"]
    kind: str
    path: str
    pinned: str
    candidate: str
    objects: int = 0
    examples: list[str] = field(default_factory=list)  # ids of (at most 3) objects concerned
    breaking: bool = False


@dataclass
class TypeReport:
    object_type: str
    sampled: int = 0
    compared: int = 0
    gone: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # object id -> error
    rows: list[Row] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(r.breaking for r in self.rows)


@dataclass
class Report:
    pinned_version: str
    candidate_version: str
    types: dict[str, TypeReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(t.breaking for t in self.types.values())

    @property
    def incomplete(self) -> bool:
        return any(t.errors for t in self.types.values())

    @property
    def exit_code(self) -> int:
        if self.breaking:
            return EXIT_BREAKING
        return EXIT_INCOMPLETE if self.incomplete else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "pinned_version": self.pinned_version,
            "candidate_version": self.candidate_version,
            "breaking": self.breaking,
            "exit_code": self.exit_code,
            "types": {
                name: {
                    "sampled": t.sampled,
                    "compared": t.compared,
                    "breaking": t.breaking,
                    "gone": t.gone,
                    "errors": t.errors,
                    **{
                        section: [
                            {k: v for k, v in asdict(r).items() if k != "section"}
                            for r in t.rows
                            if r.section == section
                        ]
                        for section in ("field", "normalized", "schema", "metadata")
                    },
                }
                for name, t in self.types.items()
            },
            "notes": self.notes,
        }


def _shown(value: Any) -> str:
    return "-" if value is None else _clip(value if isinstance(value, str) else json.dumps(value), MAX_CELL)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _rows_of(diff: ObjectDiff) -> Iterable[tuple[tuple[Any, ...], Row]]:
    """(aggregation key, row) for each change of one object."""
    for f in diff.fields:
        yield (
            ("field", f.kind, f.path, f.pinned, f.candidate),
            Row("field", f.kind, f.path, _shown(f.pinned), _shown(f.candidate)),
        )
    for a in diff.normalized:
        if a.kind == "value_changed":  # one line per attribute, the first object's values as the example
            key: tuple[Any, ...] = ("normalized", a.kind, a.attribute)
            pinned, candidate = _shown(a.pinned), _shown(a.candidate)
        else:
            key = ("normalized", a.kind, a.attribute, json_type(a.pinned), json_type(a.candidate))
            pinned = "-" if a.pinned is None else json_type(a.pinned)
            candidate = "-" if a.candidate is None else json_type(a.candidate)
        yield key, Row("normalized", a.kind, a.attribute, pinned, candidate, breaking=a.breaking)
    for s in diff.schema_failures:
        yield (
            ("schema", s.detail_type, s.path, s.rule),
            Row("schema", "fails_schema", f"{s.detail_type}: {s.path}", "valid", s.message, breaking=True),
        )
    for m in diff.metadata:
        pinned, candidate = ("-", m.code) if m.change == "added" else (m.code, "-")
        yield (
            ("metadata", m.change, m.key, m.code),
            Row("metadata", f"violation_{m.change}", m.key, pinned, candidate),
        )


_SECTION_ORDER = {"schema": 0, "normalized": 1, "field": 2, "metadata": 3}


def report(
    diffs: Iterable[ObjectDiff],
    *,
    pinned_version: str = STRIPE_API_VERSION,
    candidate_version: str = "candidate",
    notes: Sequence[str] = (),
) -> Report:
    """Aggregate object diffs per type: each distinct change once, with the number of objects it affects."""
    result = Report(pinned_version, candidate_version, notes=list(notes))
    rows: dict[str, dict[tuple[Any, ...], Row]] = {}
    for diff in diffs:
        summary = result.types.setdefault(diff.object_type, TypeReport(diff.object_type))
        summary.sampled += 1
        if diff.status == "gone":
            summary.gone.append(diff.object_id)
            continue
        if diff.status == "error":
            summary.errors[diff.object_id] = diff.error or "error"
            continue
        summary.compared += 1
        seen: set[tuple[Any, ...]] = set()
        for key, row in _rows_of(diff):
            if key in seen:
                continue
            seen.add(key)
            aggregated = rows.setdefault(diff.object_type, {}).setdefault(key, row)
            aggregated.objects += 1
            if len(aggregated.examples) < 3:
                aggregated.examples.append(diff.object_id)
    for object_type, found in rows.items():
        result.types[object_type].rows = sorted(
            found.values(), key=lambda r: (not r.breaking, _SECTION_ORDER[r.section], r.kind, r.path)
        )
    result.types = dict(sorted(result.types.items()))
    return result


def render_table(result: Report) -> str:
    lines = [
        f"Stripe API version rehearsal: pinned {result.pinned_version}"
        f" -> candidate {result.candidate_version}",
        "",
    ]
    if not result.types:
        lines.append("no stored objects to rehearse")
    for name, summary in result.types.items():
        counts = [f"{summary.sampled} sampled", f"{summary.compared} compared"]
        counts += [f"{len(summary.gone)} gone"] if summary.gone else []
        counts += [f"{len(summary.errors)} unreadable"] if summary.errors else []
        verdict = "BREAKING" if summary.breaking else "no breaking change"
        lines.append(f"{name}: {', '.join(counts)} -- {verdict}")
        table = [
            [
                "detail fails schema" if r.section == "schema" else f"{r.section} {r.kind.replace('_', ' ')}",
                _clip(r.path, MAX_CELL),
                _clip(r.pinned, MAX_CELL),
                _clip(r.candidate, MAX_CELL),
                f"{r.objects}/{summary.compared}",
                "BREAKING" if r.breaking else "",
            ]
            for r in summary.rows
        ]
        table += [["gone (404)", object_id, "", "", "", ""] for object_id in summary.gone]
        table += [
            ["unreadable", object_id, "", _clip(e, MAX_CELL), "", ""]
            for object_id, e in summary.errors.items()
        ]
        if table:
            header = ["change", "path / attribute", "pinned", "candidate", "objects", ""]
            widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
            for row in [header, *table]:
                lines.append(
                    "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                )
        else:
            lines.append("  no differences")
        lines.append("")
    lines += [f"note: {note}" for note in result.notes]
    if result.breaking:
        lines.append("RESULT: BREAKING -- a published contract would break with this version (exit 2)")
    elif result.incomplete:
        lines.append("RESULT: no breaking change found, but some objects could not be read (exit 1)")
    else:
        lines.append("RESULT: no published contract would break (exit 0)")
    return "\n".join(lines)


# -- sampling the store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    object_type: str
    object_id: str
    account: str | None
    livemode: bool


@dataclass
class Skipped:
    other_mode: int = 0  # live objects with a test key, or test objects with a live key
    deleted: int = 0
    not_retrievable: dict[str, int] = field(default_factory=dict)  # type -> objects (no retrieve path)

    def notes(self, livemode: bool) -> list[str]:
        found = []
        if self.other_mode:
            mode, other = ("live", "test") if livemode else ("test", "live")
            found.append(f"{self.other_mode} {other}-mode objects skipped: the key is a {mode}-mode key")
        if self.deleted:
            found.append(f"{self.deleted} deleted objects skipped")
        if self.not_retrievable:
            listed = ", ".join(f"{t} ({n})" for t, n in sorted(self.not_retrievable.items()))
            found.append(f"types without a retrieve path skipped: {listed}")
        return found


def sample_objects(
    dynamodb: Any,
    table_name: str,
    *,
    per_type: int,
    livemode: bool,
    types: Sequence[str] | None = None,
) -> tuple[list[Sample], Skipped]:
    """Up to `per_type` stored, not deleted objects of each type in the key's mode.

    Scans the `type_created` index (it carries the normalized attributes, not the bodies, so a scan reads
    a fraction of the table); with `types` it stops as soon as each type has its sample.
    """
    from stripe_middleware.adapters.dynamodb.table import PLATFORM, TYPE_CREATED_INDEX
    from stripe_middleware.adapters.stripe.objects import REFETCH_PATHS

    names = {"#t": "object_type", "#i": "object_id", "#a": "account", "#l": "livemode", "#d": "deleted_at"}
    request: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": TYPE_CREATED_INDEX.name,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    if types:
        values = {f":t{n}": {"S": t} for n, t in enumerate(types)}
        request["FilterExpression"] = f"#t IN ({', '.join(values)})"
        request["ExpressionAttributeValues"] = values
    samples: dict[str, list[Sample]] = {t: [] for t in types or ()}
    skipped = Skipped()
    while True:
        page = dynamodb.scan(**request)
        for item in page.get("Items", []):
            object_type = item.get("object_type", {}).get("S")
            object_id = item.get("object_id", {}).get("S")
            if not object_type or not object_id:
                continue
            if object_type not in REFETCH_PATHS:
                skipped.not_retrievable[object_type] = skipped.not_retrievable.get(object_type, 0) + 1
                continue
            if "deleted_at" in item:
                skipped.deleted += 1
                continue
            if item.get("livemode", {}).get("BOOL", False) != livemode:
                skipped.other_mode += 1
                continue
            chosen = samples.setdefault(object_type, [])
            if len(chosen) < per_type:
                account = item.get("account", {}).get("S")
                chosen.append(
                    Sample(object_type, object_id, None if account == PLATFORM else account, livemode)
                )
        done = bool(types) and all(len(s) >= per_type for s in samples.values())
        if done or "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [s for object_type in sorted(samples) for s in samples[object_type]], skipped


# -- fetching from Stripe ------------------------------------------------------------------------------
class FatalStripeError(Exception):
    """Stripe refuses the key or the version itself: no object can be read, stop."""


def fetch(client: Any, sample: Sample) -> dict[str, Any] | None:
    """The object as this client's API version renders it; None when Stripe no longer has it (404)."""
    import stripe

    from stripe_middleware.adapters.stripe.objects import REFETCH_PATHS

    options: dict[str, Any] = {"stripe_account": sample.account} if sample.account else {}
    try:
        response = client.raw_request(
            "get", f"{REFETCH_PATHS[sample.object_type]}/{sample.object_id}", **options
        )
    except stripe.AuthenticationError as error:
        raise FatalStripeError(f"Stripe refused the API key: {error.user_message or error}") from error
    except stripe.InvalidRequestError as error:
        if error.http_status == 404:
            return None
        raise
    data = response.data
    if not isinstance(data, dict):
        raise ValueError(f"Stripe answered {type(data).__name__}, not an object")
    return data


def rehearse_object(
    sample: Sample,
    pinned_client: Any,
    candidate_client: Any,
    schema: MetadataSchema,
    *,
    pinned_version: str,
    candidate_version: str,
) -> ObjectDiff:
    import stripe

    try:
        pinned = fetch(pinned_client, sample)
        candidate = fetch(candidate_client, sample) if pinned is not None else None
    except (stripe.StripeError, ValueError) as error:
        message = getattr(error, "user_message", None) or str(error) or type(error).__name__
        return ObjectDiff(sample.object_type, sample.object_id, status="error", error=message)
    if pinned is None or candidate is None:
        return ObjectDiff(sample.object_type, sample.object_id, status="gone")
    diff = compare(
        pinned,
        candidate,
        schema,
        pinned_version=pinned_version,
        candidate_version=candidate_version,
        account=sample.account,
    )
    # Reported under the stored identity, even when the candidate re-keys it.
    diff.object_type, diff.object_id = sample.object_type, sample.object_id
    return diff


# -- the command ---------------------------------------------------------------------------------------
def parse_types(value: str | None) -> list[str] | None:
    """`customer,invoice` -> ["customer", "invoice"]; ValueError names unknown types and the valid ones."""
    from stripe_middleware.adapters.stripe.objects import REFETCH_PATHS

    if not value:
        return None
    names = list(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
    unknown = [t for t in names if t not in REFETCH_PATHS]
    if unknown:
        raise ValueError(
            f"unknown type {', '.join(unknown)}; types that can be rehearsed: {', '.join(REFETCH_PATHS)}"
        )
    return names or None


def api_key(args: argparse.Namespace, target: targets.Target) -> str:
    """`--stage`: the read-only key, from its secret (a rehearsal only reads); locally: `STRIPE_API_KEY`."""
    if getattr(args, "stage", None):
        from stripe_middleware.adapters.secrets import read_secret

        return read_secret(target.client("secretsmanager"), target.require("stripe_read_only_key_secret_arn"))
    return targets.local_stripe_key()


def run(args: argparse.Namespace) -> int:
    from stripe_middleware.adapters.stripe.client import is_live_key, make_stripe_client
    from stripe_middleware.shared.errors import SecretUnavailableError
    from stripe_middleware.shared.metadata_schema import load_metadata_schema
    from stripe_middleware_dev import use_repo_config

    use_repo_config()
    pinned_version, candidate_version = STRIPE_API_VERSION, args.api_version
    try:
        types = parse_types(args.types)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INCOMPLETE
    target = targets.resolve(args)
    try:
        key = api_key(args, target)
    except (ValueError, SecretUnavailableError) as error:
        print(f"error: no Stripe API key: {error}", file=sys.stderr)
        return EXIT_INCOMPLETE
    livemode = is_live_key(key)
    samples, skipped = sample_objects(
        target.client("dynamodb"),
        target.require("table_name"),
        per_type=args.sample,
        livemode=livemode,
        types=types,
    )
    api_base = os.environ.get("STRIPE_API_BASE", "").strip() or None
    pinned_client = make_stripe_client(key, api_version=pinned_version, api_base=api_base)
    candidate_client = make_stripe_client(key, api_version=candidate_version, api_base=api_base)
    schema = load_metadata_schema()
    diffs: list[ObjectDiff] = []
    for n, sample in enumerate(samples, 1):
        if args.format == "table" and sys.stderr.isatty():
            print(f"\rfetching {n}/{len(samples)}", end="", file=sys.stderr, flush=True)
        try:
            diffs.append(
                rehearse_object(
                    sample,
                    pinned_client,
                    candidate_client,
                    schema,
                    pinned_version=pinned_version,
                    candidate_version=candidate_version,
                )
            )
        except FatalStripeError as error:
            print(f"\nerror: {error}", file=sys.stderr)
            return EXIT_INCOMPLETE
    if args.format == "table" and sys.stderr.isatty() and samples:
        print(file=sys.stderr)
    notes = skipped.notes(livemode)
    if pinned_version == candidate_version:
        notes.append("the candidate is the pinned version: nothing can differ")
    result = report(diffs, pinned_version=pinned_version, candidate_version=candidate_version, notes=notes)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print(render_table(result))
    return result.exit_code


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "rehearse",
        help="what upgrading the pinned Stripe API version would change, on a sample of stored objects",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--api-version", required=True, help="the candidate Stripe API version, e.g. 2027-01-28.fig"
    )
    parser.add_argument(
        "--sample",
        type=targets.positive_int,
        default=DEFAULT_SAMPLE,
        help=f"stored objects per type to fetch (default {DEFAULT_SAMPLE})",
    )
    parser.add_argument(
        "--types", help="comma-separated object types, e.g. customer,invoice (default: all stored)"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output (default table)")
    targets.add_stage_argument(parser)
    parser.set_defaults(run=run)
