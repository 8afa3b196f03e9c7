"""CDK app.

`cdk synth -c stage=dev|staging|prod [-c stripePartnerEventSource=aws.partner/stripe.com/ed_...]
[-c refetchSameSecond=true] [-c catchupMinutes=15] [-c alarmEmail=ops@example.com]
[-c webhookEvents=*|type,type] [-c stripeConnect=true] [-c stripeRegistrationRevision=<any new value>]
[-c reconcileAccounts=acct_1,acct_2]`
"""

from __future__ import annotations

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import stage_config
from infra.stack import StackOptions, StripeMiddlewareStack
from stripe_middleware.shared.contract import SERVICE


def build_app(app: App | None = None) -> tuple[App, StripeMiddlewareStack]:
    app = app or App()
    stage = stage_config(str(app.node.try_get_context("stage") or "dev"))
    partner_source = app.node.try_get_context("stripePartnerEventSource")
    stack = StripeMiddlewareStack(
        app,
        f"{SERVICE}-{stage.name}",
        options=StackOptions(
            stage=stage,
            stripe_partner_event_source=partner_source or None,
            refetch_same_second=str(app.node.try_get_context("refetchSameSecond")).lower() == "true",
            catchup_minutes=int(app.node.try_get_context("catchupMinutes") or 15),
            alarm_email=app.node.try_get_context("alarmEmail") or None,
            webhook_events=tuple(
                e for e in str(app.node.try_get_context("webhookEvents") or "*").split(",") if e.strip()
            ),
            stripe_connect=str(app.node.try_get_context("stripeConnect")).lower() == "true",
            reconcile_accounts=tuple(
                a.strip()
                for a in str(app.node.try_get_context("reconcileAccounts") or "").split(",")
                if a.strip()
            ),
            registration_revision=str(app.node.try_get_context("stripeRegistrationRevision") or ""),
        ),
        env=Environment(
            account=app.node.try_get_context("account"), region=app.node.try_get_context("region")
        ),
        description=f"stripe-middleware ({stage.name}): verified Stripe events into AWS",
    )
    Tags.of(stack).add("service", SERVICE)
    Tags.of(stack).add("stage", stage.name)
    # Unsuppressed AwsSolutions findings are errors and fail `cdk synth`.
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
