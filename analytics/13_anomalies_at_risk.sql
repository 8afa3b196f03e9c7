-- anomalies_at_risk: the current MRR of customers with an anomaly (any detector but churn_risk) raised in
-- the 90 days before the last day of data, per account (null: the platform's own), mode (livemode), currency
-- and detector: the revenue behind open fraud and anomaly findings. An account's and a mode's numbers are
-- never added together.
--
-- * An anomaly is counted once per customer and kind (a redelivered signal has the same record_id).
-- * "Open" matches the read API: anomaly records are kept 90 days after they were raised.
-- * Current MRR (current_mrr) as in revenue_at_risk: the end of the last month of data, customers with
--   MRR > 0.
CREATE OR REPLACE VIEW anomalies_at_risk AS
WITH last_day AS (
    SELECT max(event_time) AS at FROM records
),
open_anomalies AS (
    SELECT DISTINCT r.account, r.livemode, r.customer_id, r.signal_kind
    FROM records AS r
    CROSS JOIN last_day AS d
    WHERE r.record_kind = 'signal'
        AND r.signal_kind <> 'churn_risk'
        AND r.customer_id IS NOT NULL
        AND r.event_time > d.at - INTERVAL '90' DAY
)
SELECT
    c.account,
    c.livemode,
    c.currency,
    a.signal_kind AS kind,
    count(*) AS customers,
    SUM(c.mrr) AS mrr
FROM open_anomalies AS a
JOIN current_mrr AS c
    ON c.customer_id = a.customer_id
    AND COALESCE(c.account, '') = COALESCE(a.account, '')
    AND c.livemode = a.livemode
GROUP BY c.account, c.livemode, c.currency, a.signal_kind
