"""Adapters: the only code that imports boto3, botocore or stripe. Each implements a context's port and
turns SDK errors into the context's errors."""
