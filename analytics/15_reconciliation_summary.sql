-- reconciliation_summary: per account (null: the platform's own), mode (livemode), month, currency and
-- status, how many payouts and how much money they paid out, from payout_reconciliation (each payout once,
-- in its latest state). The money in `discrepancies` rows is what finance cannot yet post to the ledger
-- as explained; `unreconcilable_by_stripe` rows are manual and instant payouts Stripe ties no transactions
-- to.
CREATE OR REPLACE VIEW reconciliation_summary AS
SELECT
    account,
    livemode,
    month,
    currency,
    status,
    count(*) AS payouts,
    SUM(amount) AS amount
FROM payout_reconciliation
GROUP BY account, livemode, month, currency, status
