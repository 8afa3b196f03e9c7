-- current_mrr: the MRR of each customer (account, livemode, customer_id) and currency at the end of the last
-- month of data (customer_mrr_months), for the customers who still have some (MRR > 0: a customer already
-- gone has no revenue left to lose). What revenue_at_risk and anomalies_at_risk put at risk.
CREATE OR REPLACE VIEW current_mrr AS
WITH last_month AS (
    SELECT max(month) AS month FROM customer_mrr_months
)
SELECT cm.account, cm.livemode, cm.customer_id, cm.currency, cm.mrr
FROM customer_mrr_months AS cm
JOIN last_month AS lm ON cm.month = lm.month
WHERE cm.mrr > 0
