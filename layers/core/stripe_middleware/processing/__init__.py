"""Processing context: de-duplicate, order, normalize and store Stripe events, then publish them."""
