-- customer_mrr_months: one row per customer, currency and month: the sum of the customer's subscriptions'
-- MRR at the month's end, the previous month's, and whether the customer had MRR in any earlier month.
-- The building block of mrr_movements, mrr_summary, cohort_retention and current_mrr.
--
-- A customer is (account, livemode, customer_id). The months of a customer are contiguous (every
-- subscription has a row in every month from its first to the last month of data), so the previous row
-- is the previous month; before its first month a customer's MRR is 0.
CREATE OR REPLACE VIEW customer_mrr_months AS
WITH per_customer AS (
    SELECT month, currency, account, livemode, customer_id, SUM(mrr) AS mrr
    FROM subscription_months
    WHERE currency IS NOT NULL
    GROUP BY month, currency, account, livemode, customer_id
)
SELECT
    month,
    currency,
    account,
    livemode,
    customer_id,
    mrr,
    COALESCE(
        lag(mrr) OVER (PARTITION BY currency, account, livemode, customer_id ORDER BY month), 0
    ) AS previous_mrr,
    COALESCE(
        max(CASE WHEN mrr > 0 THEN 1 ELSE 0 END) OVER (
            PARTITION BY currency, account, livemode, customer_id
            ORDER BY month
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ),
        0
    ) AS had_mrr_before
FROM per_customer
