"""Commands context: validate, queue and execute writes to Stripe (the command gateway)."""
