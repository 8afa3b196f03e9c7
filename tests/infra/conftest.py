"""Synthesize each stack variant once per session (one synth costs seconds of jsii start-up).

Bundling is skipped here (`aws:cdk:bundling-stacks=[]`): these tests check the template, and
`make synth` exercises the real layer build through the pinned CDK CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import build_app

PARTNER_SOURCE = "aws.partner/stripe.com/ed_61Sx0aBcDeFgHiJkL"


class Synthesized:
    def __init__(self, context: dict[str, Any]) -> None:
        app, stack = build_app(App(context={"aws:cdk:bundling-stacks": [], **context}))
        self.assembly_dir = Path(app.synth().directory)  # raises on any unacknowledged cdk-nag finding
        self.stack = stack
        self.template = Template.from_stack(stack)
        self.template_path = self.assembly_dir / stack.template_file

    def resources(self, resource_type: str) -> dict[str, Any]:
        found: dict[str, Any] = self.template.find_resources(resource_type)
        return found

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.template_path.read_text())
        return result


def function_named(synth: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    """The function `functions/<name>/` (its service name is stripe-middleware-<name>)."""
    return next(
        (logical_id, f)
        for logical_id, f in synth.resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == f"stripe-middleware-{name}"
    )


def policy_statements_of(synth: Synthesized, function: dict[str, Any]) -> list[dict[str, Any]]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        s
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


_cache: dict[str, Synthesized] = {}


def synthesized(stage: str, **context: Any) -> Synthesized:
    key = json.dumps({"stage": stage, **context}, sort_keys=True)
    if key not in _cache:
        _cache[key] = Synthesized({"stage": stage, **context})
    return _cache[key]


@pytest.fixture(scope="session")
def dev() -> Synthesized:
    return synthesized("dev")


@pytest.fixture(scope="session")
def prod() -> Synthesized:
    return synthesized("prod")


@pytest.fixture(scope="session")
def with_partner_source() -> Synthesized:
    return synthesized("dev", stripePartnerEventSource=PARTNER_SOURCE)
