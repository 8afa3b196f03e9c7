"""Export: every published Stripe event, backfilled object, signal and reconciliation result as one flat
row of the `records` table, the warehouse that the analytics views (`analytics/*.sql`) read on Athena and on
DuckDB.

`rows.py` is the row model, written once: its columns, their types, and for each record kind the JSON path
of every column in the EventBridge event. On AWS the bus rules' input transformers and the Glue table are
built from it (no Lambda on the path); locally, the warehouse writer turns events into rows with `row_of`.
"""
