"""stripe-middleware core library, shipped to every function as a Lambda layer."""
