"""History context: backfill every Stripe object from the list endpoints, catch up on missed events from
the Events API. Objects enter the processing context's store path (normalize, order guard)."""
