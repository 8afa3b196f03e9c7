"""What every context shares: errors, the published contract, HTTP shapes, time, settings, publishing.

Modules the ingest path imports (errors, contract, settings, observability) use only the
standard library.
"""
