-- subscription_months: one row per subscription and calendar month (DATE, the first of the month), from
-- the month of the subscription's first record to the last month of data, with its MRR at the month's end.
--
-- Rules (README "Metric definitions"):
-- * The state at a month's end is the subscription's state with the greatest order_key among its event
--   and object rows dated (event_time, UTC) in that month; a month without rows carries the previous
--   month's state forward. Duplicates and a backfill snapshot of the same subscription are one state among
--   others, so they never add up.
-- * mrr = mrr_amount when the status at the month's end is active or past_due, else 0: trialing,
--   incomplete, incomplete_expired, unpaid, paused and canceled subscriptions carry no MRR.
-- * mrr_amount (computed by the processor's normalization) is the monthly normalized recurring amount in
--   the currency's minor unit: licensed recurring items only (metered usage excluded), unit_amount x
--   quantity, annual / quarterly / weekly / daily prices divided to one month, discounts and coupons applied.
-- * currency is the subscription's own: currencies are never converted or added together.
-- * Metadata (campaign, crm_account_id, erp_id, cost_center) is the subscription's own value, else its
--   customer's latest.
-- * The month series is built from the data (first to last month of any event or object row), so a month
--   with no row at all still appears.
CREATE OR REPLACE VIEW subscription_months AS
WITH digits AS (
    SELECT n FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS d (n)
),
bounds AS (
    SELECT
        CAST(date_trunc('month', min(event_time)) AS DATE) AS first_month,
        CAST(date_trunc('month', max(event_time)) AS DATE) AS last_month
    FROM records
    WHERE record_kind IN ('event', 'object')
),
months AS (
    SELECT CAST(b.first_month + INTERVAL '1' MONTH * (d1.n + 10 * d2.n + 100 * d3.n) AS DATE) AS month
    FROM bounds AS b
    CROSS JOIN digits AS d1
    CROSS JOIN digits AS d2
    CROSS JOIN digits AS d3
    WHERE b.first_month + INTERVAL '1' MONTH * (d1.n + 10 * d2.n + 100 * d3.n) <= b.last_month
),
states AS (
    SELECT
        object_id AS subscription_id,
        account,
        livemode,
        customer_id,
        currency,
        status,
        mrr_amount,
        campaign,
        crm_account_id,
        erp_id,
        cost_center,
        CAST(date_trunc('month', event_time) AS DATE) AS state_month,
        row_number() OVER (
            PARTITION BY object_id, account, livemode, CAST(date_trunc('month', event_time) AS DATE)
            ORDER BY order_key DESC NULLS LAST, record_id DESC
        ) AS state_rank
    FROM records
    WHERE record_kind IN ('event', 'object') AND object_type = 'subscription' AND object_id IS NOT NULL
),
month_end_states AS (
    SELECT
        s.*,
        lead(s.state_month) OVER (
            PARTITION BY s.subscription_id, s.account, s.livemode ORDER BY s.state_month
        ) AS next_state_month
    FROM states AS s
    WHERE s.state_rank = 1
),
customers AS (
    SELECT object_id AS customer_id, account, livemode, campaign, crm_account_id, erp_id, cost_center
    FROM objects_latest
    WHERE object_type = 'customer'
)
SELECT
    m.month,
    s.subscription_id,
    COALESCE(s.customer_id, s.subscription_id) AS customer_id,
    s.account,
    s.livemode,
    s.currency,
    s.status,
    CASE WHEN s.status IN ('active', 'past_due') THEN COALESCE(s.mrr_amount, 0) ELSE 0 END AS mrr,
    COALESCE(s.campaign, c.campaign) AS campaign,
    COALESCE(s.crm_account_id, c.crm_account_id) AS crm_account_id,
    COALESCE(s.erp_id, c.erp_id) AS erp_id,
    COALESCE(s.cost_center, c.cost_center) AS cost_center
FROM month_end_states AS s
JOIN months AS m
    ON m.month >= s.state_month AND (s.next_state_month IS NULL OR m.month < s.next_state_month)
LEFT JOIN customers AS c
    ON c.customer_id = s.customer_id
    AND COALESCE(c.account, '') = COALESCE(s.account, '')
    AND c.livemode = s.livemode
