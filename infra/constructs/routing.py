"""Routing: the custom event bus subscribers attach to, its replay archive, and the detail schemas."""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_eventschemas as eventschemas
from constructs import Construct

from events import DETAIL_SCHEMAS, load_event
from infra.config import StageConfig
from stripe_middleware.shared.contract import SERVICE, SOURCE


class EventRouting(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{SERVICE}-{stage.name}")
        self.archive = self.bus.archive(
            "Archive",
            description="Every published event, for replay to a subscriber that missed some",
            event_pattern=events.EventPattern(source=[SOURCE]),
            retention=Duration.days(stage.archive_retention_days),
        )
        self.registry = eventschemas.CfnRegistry(
            self,
            "Registry",
            registry_name=f"{SERVICE}-{stage.name}",
            description="detail schemas of the events stripe-middleware publishes",
        )
        for name, path in DETAIL_SCHEMAS.items():
            eventschemas.CfnSchema(
                self,
                f"Schema-{name}",
                registry_name=self.registry.attr_registry_name,
                schema_name=f"{SOURCE}@{name}",
                type="JSONSchemaDraft4",
                content=json.dumps(load_event(path)),
                description=f"detail of {name} events"
                if name != "stripe-event"
                else "detail of every Stripe event",
            )
