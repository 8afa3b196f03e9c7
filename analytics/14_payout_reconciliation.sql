-- payout_reconciliation: every reconciled payout once, in its latest state, per account (null: the
-- platform's own) and mode (livemode).
--
-- * A payout's record is published again each time it changes, with a greater revision; the row with the
--   greatest revision is its state (a redelivered or late older record never wins).
-- * status: balanced | discrepancies | repaired | unreconcilable_by_stripe (the README's Reconciliation).
-- * amount and currency: the payout's, in the minor unit; month: the month it was created (UTC).
-- * discrepancies_found: the discrepancies ever found in it (each once, however often delivered), of which
--   repaired_when_found were objects missing from the store that the same run fetched and stored. A gap
--   closed later (a missed webhook arriving) leaves them counted here; status is the current word.
CREATE OR REPLACE VIEW payout_reconciliation AS
WITH latest AS (
    SELECT account, livemode, payout_id, event_time, currency, amount, status, revision
    FROM (
        SELECT
            r.*,
            row_number() OVER (
                PARTITION BY r.payout_id, COALESCE(r.account, ''), r.livemode
                ORDER BY r.revision DESC
            ) AS revision_rank
        FROM records AS r
        WHERE r.record_kind = 'reconciliation'
    ) AS ranked
    WHERE revision_rank = 1
),
found AS (
    SELECT
        account,
        livemode,
        payout_id,
        count(DISTINCT record_id) AS discrepancies_found,
        count(DISTINCT CASE WHEN repaired THEN record_id END) AS repaired_when_found
    FROM records
    WHERE record_kind = 'discrepancy'
    GROUP BY account, livemode, payout_id
)
SELECT
    l.account,
    l.livemode,
    l.payout_id,
    CAST(date_trunc('month', l.event_time) AS DATE) AS month,
    l.currency,
    l.amount,
    l.status,
    l.revision,
    COALESCE(f.discrepancies_found, 0) AS discrepancies_found,
    COALESCE(f.repaired_when_found, 0) AS repaired_when_found
FROM latest AS l
LEFT JOIN found AS f
    ON f.payout_id = l.payout_id
    AND COALESCE(f.account, '') = COALESCE(l.account, '')
    AND f.livemode = l.livemode
