-- cohort_retention: customers by account (null: the platform's own), mode (livemode) and acquisition cohort
-- (the month of their first succeeded payment) and how many are still with us each month after. An
-- account's and a mode's customers are never counted together.
--
-- * A customer is (account, livemode, customer_id); charges without a customer are not in any cohort.
-- * A payment is a succeeded charge (succeeded_charges: latest state; a charge refunded later still made the
--   customer a paying customer), dated by the charge's created.
-- * retained in a month = MRR > 0 at the month's end (customer_mrr_months, any currency) or a succeeded
--   payment in the month. So month 0 is always 100 %, a subscriber who churns drops out, and a one-off
--   buyer counts in the months they buy.
-- * months_since runs from 0 (the cohort month) to the last month of data; retention = retained / customers.
CREATE OR REPLACE VIEW cohort_retention AS
WITH digits AS (
    SELECT n FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS d (n)
),
offsets AS (
    SELECT d1.n + 10 * d2.n + 100 * d3.n AS months_since
    FROM digits AS d1
    CROSS JOIN digits AS d2
    CROSS JOIN digits AS d3
),
bounds AS (
    SELECT CAST(date_trunc('month', max(event_time)) AS DATE) AS last_month
    FROM records
    WHERE record_kind IN ('event', 'object')
),
payments AS (
    SELECT account, livemode, customer_id, month
    FROM succeeded_charges
    WHERE customer_id IS NOT NULL
),
cohorts AS (
    SELECT account, livemode, customer_id, min(month) AS cohort_month
    FROM payments
    GROUP BY account, livemode, customer_id
),
active AS (
    SELECT account, livemode, customer_id, month FROM payments
    UNION
    SELECT account, livemode, customer_id, month FROM customer_mrr_months WHERE mrr > 0
),
retained AS (
    SELECT c.account, c.livemode, c.cohort_month, a.month, count(*) AS retained
    FROM cohorts AS c
    JOIN active AS a
        ON a.customer_id = c.customer_id
        AND COALESCE(a.account, '') = COALESCE(c.account, '')
        AND a.livemode = c.livemode
        AND a.month >= c.cohort_month
    GROUP BY c.account, c.livemode, c.cohort_month, a.month
),
cohort_sizes AS (
    SELECT account, livemode, cohort_month, count(*) AS customers
    FROM cohorts
    GROUP BY account, livemode, cohort_month
),
grid AS (
    SELECT
        s.account,
        s.livemode,
        s.cohort_month,
        o.months_since,
        CAST(s.cohort_month + INTERVAL '1' MONTH * o.months_since AS DATE) AS month,
        s.customers
    FROM cohort_sizes AS s
    CROSS JOIN offsets AS o
    CROSS JOIN bounds AS b
    WHERE s.cohort_month + INTERVAL '1' MONTH * o.months_since <= b.last_month
)
SELECT
    g.account,
    g.livemode,
    g.cohort_month,
    g.months_since,
    g.customers,
    COALESCE(r.retained, 0) AS retained,
    CAST(COALESCE(r.retained, 0) AS DOUBLE) / g.customers AS retention
FROM grid AS g
LEFT JOIN retained AS r
    ON r.cohort_month = g.cohort_month
    AND r.month = g.month
    AND COALESCE(r.account, '') = COALESCE(g.account, '')
    AND r.livemode = g.livemode
