"""Reconciliation: every automatic payout explained to the cent against the store, every gap named.

A payout's balance transactions (Stripe ties them to automatic payouts) are grouped by reporting category
and checked against the payout's amount and against the objects the store holds (check.py, pure); objects
missing from the store are repaired through the backfill's path; a record per payout is kept and each
discrepancy is published once (run.py). Manual and instant payouts are reported as unreconcilable by
Stripe, never with false discrepancies.
"""
