"""Dunning: what happens after a subscription payment fails, as a configurable policy (config/dunning.yaml).

One workflow per invoice, started by its first `invoice.payment_failed`: at each step (days after the failure)
the store is checked first (an invoice paid, voided or written off meanwhile ends it), then a
`stripe-middleware.dunning.step` event goes out for outreach, with the churn-risk level when signals have
one; a step may retry the payment through the command gateway, never while Stripe's own retries are on for
the invoice; the final step takes the configured action (cancel the subscription, mark the invoice
uncollectible, or leave it). On AWS a Step Functions state machine waits between the steps; locally a clock
you advance does (`stripe-middleware dunning --advance 3d`). The logic here is the same for both.
"""
