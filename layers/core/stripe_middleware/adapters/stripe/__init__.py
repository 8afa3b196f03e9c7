"""Stripe SDK adapters: the configured client, object reads, writes for the command gateway, and list
pages for backfill and catch-up."""
