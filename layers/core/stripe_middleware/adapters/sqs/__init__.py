"""SQS adapters, one module per queue so each function imports only its own."""
