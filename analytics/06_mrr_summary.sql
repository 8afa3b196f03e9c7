-- mrr_summary: per account (null: the platform's own), mode (livemode), month and currency, MRR, ARR, net
-- revenue retention and logo churn rate, from the same customer months as mrr_movements. An account's and a
-- mode's numbers are never added together.
--
-- * arr = 12 x mrr.
-- * nrr (net revenue retention) = the MRR at this month's end of the customers who had MRR twelve months
--   earlier, divided by their MRR then (expansion, contraction and churn of those customers count; new
--   customers do not). nrr_months = 12 says so. For a month whose twelve-months-earlier month lies before
--   the first month of data of that account and mode, nrr is the monthly NRR instead (the same ratio
--   against the previous month's end) and nrr_months = 1. Null when the base has no MRR.
-- * logo_churn_rate = customers churned in the month (MRR > 0 at the previous month's end, 0 at this
--   month's end) / customers with MRR > 0 at the previous month's end. Null when there were none.
-- A customer with subscriptions in two currencies counts in each (currencies are kept apart).
CREATE OR REPLACE VIEW mrr_summary AS
WITH monthly AS (
    SELECT
        account,
        livemode,
        month,
        currency,
        SUM(mrr) AS mrr,
        SUM(CASE WHEN previous_mrr > 0 THEN mrr ELSE 0 END) AS mrr_kept_from_start,
        SUM(previous_mrr) AS mrr_at_start,
        SUM(CASE WHEN previous_mrr > 0 THEN 1 ELSE 0 END) AS customers_at_start,
        SUM(CASE WHEN previous_mrr > 0 AND mrr = 0 THEN 1 ELSE 0 END) AS customers_churned
    FROM customer_mrr_months
    GROUP BY account, livemode, month, currency
),
data_start AS (
    SELECT account, livemode, min(month) AS first_month
    FROM customer_mrr_months
    GROUP BY account, livemode
),
yearly AS (
    SELECT
        later.account,
        later.livemode,
        later.month,
        later.currency,
        SUM(later.mrr) AS mrr_kept_from_base,
        SUM(base.mrr) AS mrr_at_base
    FROM customer_mrr_months AS base
    JOIN customer_mrr_months AS later
        ON later.customer_id = base.customer_id
        AND later.currency = base.currency
        AND COALESCE(later.account, '') = COALESCE(base.account, '')
        AND later.livemode = base.livemode
        AND later.month = CAST(base.month + INTERVAL '12' MONTH AS DATE)
    WHERE base.mrr > 0
    GROUP BY later.account, later.livemode, later.month, later.currency
)
SELECT
    m.account,
    m.livemode,
    m.month,
    m.currency,
    m.mrr,
    12 * m.mrr AS arr,
    CASE
        WHEN CAST(m.month - INTERVAL '12' MONTH AS DATE) >= d.first_month
            THEN CAST(y.mrr_kept_from_base AS DOUBLE) / NULLIF(y.mrr_at_base, 0)
        ELSE CAST(m.mrr_kept_from_start AS DOUBLE) / NULLIF(m.mrr_at_start, 0)
    END AS nrr,
    CAST(m.customers_churned AS DOUBLE) / NULLIF(m.customers_at_start, 0) AS logo_churn_rate,
    CASE WHEN CAST(m.month - INTERVAL '12' MONTH AS DATE) >= d.first_month THEN 12 ELSE 1 END AS nrr_months
FROM monthly AS m
JOIN data_start AS d
    ON COALESCE(d.account, '') = COALESCE(m.account, '')
    AND d.livemode = m.livemode
LEFT JOIN yearly AS y
    ON y.month = m.month
    AND y.currency = m.currency
    AND COALESCE(y.account, '') = COALESCE(m.account, '')
    AND y.livemode = m.livemode
