-- revenue_at_risk: the current MRR of customers whose latest churn-risk signal says high (and, as separate
-- rows, medium), per account (null: the platform's own), mode (livemode) and currency; an account's and a
-- mode's numbers are never added together.
--
-- * The latest signal of a customer (account, livemode, customer_id) is its churn_risk signal row with the
--   greatest event_time (the signal's as_of, event time), then record_id; a redelivered signal is the same
--   record_id. A customer whose risk fell back to low is not at risk any more.
-- * Current MRR = MRR at the end of the last month of data (current_mrr); customers counts those with
--   MRR > 0 (a customer already gone has no revenue left to lose).
CREATE OR REPLACE VIEW revenue_at_risk AS
WITH latest_signals AS (
    SELECT
        account,
        livemode,
        customer_id,
        signal_level,
        row_number() OVER (
            PARTITION BY account, livemode, customer_id ORDER BY event_time DESC, record_id DESC
        ) AS signal_rank
    FROM records
    WHERE record_kind = 'signal' AND signal_kind = 'churn_risk' AND customer_id IS NOT NULL
)
SELECT
    c.account,
    c.livemode,
    c.currency,
    s.signal_level AS level,
    count(*) AS customers,
    SUM(c.mrr) AS mrr
FROM latest_signals AS s
JOIN current_mrr AS c
    ON c.customer_id = s.customer_id
    AND COALESCE(c.account, '') = COALESCE(s.account, '')
    AND c.livemode = s.livemode
WHERE s.signal_rank = 1 AND s.signal_level IN ('high', 'medium')
GROUP BY c.account, c.livemode, c.currency, s.signal_level
