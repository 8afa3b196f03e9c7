"""Stripe SDK adapters: the configured client, object reads, and writes for the command gateway."""
