"""Registration context: the stack registers its own webhook endpoints with Stripe.

A CloudFormation custom resource per endpoint (account, and Connect when enabled) creates the endpoint at
the stack's URL with the configured events and the pinned API version, writes the signing secret Stripe
returns into the webhook secret the ingest function verifies with, updates or replaces the endpoint when
the stack's settings change, and deletes it with the stack. `plan` decides (pure); `register` carries a
plan out against Stripe and Secrets Manager through the ports, so a deploy never ends half-registered.
"""
