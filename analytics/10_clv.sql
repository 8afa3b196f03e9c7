-- clv: customer lifetime value to date by account (null: the platform's own), mode (livemode), acquisition
-- cohort, campaign and currency; an account's and a mode's customers are never counted together.
--
-- * cohort_month: the month of the customer's first succeeded payment (as in cohort_retention).
-- * campaign: the customer's campaign metadata, else the campaign of its earliest subscription that has
--   one, else '(missing)'.
-- * revenue: the cumulative net revenue (succeeded_charges: net of refunds, latest state) of the cohort's
--   customers from their first payment to the end of the data, per currency (never added across currencies).
-- * customers: the cohort's customers who paid in that currency; clv = revenue / customers.
CREATE OR REPLACE VIEW clv AS
WITH payments AS (
    SELECT account, livemode, customer_id, currency, month, revenue
    FROM succeeded_charges
    WHERE customer_id IS NOT NULL AND currency IS NOT NULL
),
cohorts AS (
    SELECT account, livemode, customer_id, min(month) AS cohort_month
    FROM payments
    GROUP BY account, livemode, customer_id
),
subscription_campaigns AS (
    SELECT
        account,
        livemode,
        customer_id,
        campaign,
        row_number() OVER (
            PARTITION BY account, livemode, customer_id ORDER BY created, object_id
        ) AS campaign_rank
    FROM objects_latest
    WHERE object_type = 'subscription' AND campaign IS NOT NULL AND campaign <> ''
),
customer_campaigns AS (
    SELECT
        c.account,
        c.livemode,
        c.customer_id,
        c.cohort_month,
        COALESCE(NULLIF(cu.campaign, ''), sc.campaign, '(missing)') AS campaign
    FROM cohorts AS c
    LEFT JOIN objects_latest AS cu
        ON cu.object_type = 'customer'
        AND cu.object_id = c.customer_id
        AND COALESCE(cu.account, '') = COALESCE(c.account, '')
        AND cu.livemode = c.livemode
    LEFT JOIN subscription_campaigns AS sc
        ON sc.campaign_rank = 1
        AND sc.customer_id = c.customer_id
        AND COALESCE(sc.account, '') = COALESCE(c.account, '')
        AND sc.livemode = c.livemode
),
customer_revenue AS (
    SELECT account, livemode, customer_id, currency, SUM(revenue) AS revenue
    FROM payments
    GROUP BY account, livemode, customer_id, currency
)
SELECT
    cc.account,
    cc.livemode,
    cc.cohort_month,
    cc.campaign,
    count(*) AS customers,
    SUM(r.revenue) AS revenue,
    CAST(SUM(r.revenue) AS DOUBLE) / count(*) AS clv,
    r.currency
FROM customer_campaigns AS cc
JOIN customer_revenue AS r
    ON r.customer_id = cc.customer_id
    AND COALESCE(r.account, '') = COALESCE(cc.account, '')
    AND r.livemode = cc.livemode
GROUP BY cc.account, cc.livemode, cc.cohort_month, cc.campaign, r.currency
