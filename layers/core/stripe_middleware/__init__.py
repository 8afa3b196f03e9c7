"""stripe-middleware core library, shipped to Lambda as a layer.

One subpackage per bounded context (`ingest`, `processing`, `read`, `commands`, `signals`, and
`backfill`, which builds on processing and ingest), each with its models, its pure logic and a
`ports.py`; `shared` is the kernel every context may use; `adapters` is the only place that imports
boto3, botocore or stripe. The import contracts in pyproject.toml enforce it.
"""
