"""Signals: anomalies and fraud patterns (and, later, churn risk) learned from the tenant's own stream.

Every Stripe event and backfilled object the processor publishes becomes zero or more facts (a charge, a
card attached to a customer, a trial); facts are kept per subject (a customer, a card fingerprint, an
account) and every detector is a pure function of a subject's facts, in event time (each object's
`created`), so a replay, a backfill or a shuffled, duplicated stream raises the same anomalies.
"""
