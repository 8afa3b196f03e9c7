"""Ingest context: verify a webhook delivery and make it durable. Standard library only (cold start)."""
