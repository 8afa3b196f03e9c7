"""cdk-nag (v3, CDK policy validation): every acknowledged rule carries its reason, in one call shape."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept one AwsSolutions finding on `construct` (and its children) for the reason given."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
