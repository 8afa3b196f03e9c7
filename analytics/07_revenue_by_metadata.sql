-- revenue_by_metadata: revenue and MRR by account (null: the platform's own), mode (livemode), month and
-- currency for each value of each metadata dimension (campaign, crm_account_id, erp_id, cost_center); no
-- value is its own bucket, '(missing)', so gaps in the metadata show up as an amount instead of disappearing.
--
-- * revenue = succeeded charges net of refunds (amount - amount_refunded) in their latest state, in the
--   month the charge was created: a later refund lowers the charge's month. Invoices and payment intents
--   are not counted again (a paid invoice has its charge).
-- * mrr = the MRR at the month's end (subscription_months).
-- * A charge's dimension value is its own metadata, else its customer's latest; a subscription's is its
--   own, else its customer's latest (as in subscription_months).
-- Every dimension adds up to the same totals per account, mode, month and currency; an account's and a
-- mode's numbers are never added together.
CREATE OR REPLACE VIEW revenue_by_metadata AS
WITH customers AS (
    SELECT object_id AS customer_id, account, livemode, campaign, crm_account_id, erp_id, cost_center
    FROM objects_latest
    WHERE object_type = 'customer'
),
charges AS (
    SELECT
        ch.account,
        ch.livemode,
        CAST(date_trunc('month', COALESCE(ch.created, ch.event_time)) AS DATE) AS month,
        ch.currency,
        COALESCE(ch.campaign, c.campaign) AS campaign,
        COALESCE(ch.crm_account_id, c.crm_account_id) AS crm_account_id,
        COALESCE(ch.erp_id, c.erp_id) AS erp_id,
        COALESCE(ch.cost_center, c.cost_center) AS cost_center,
        COALESCE(ch.amount, 0) - COALESCE(ch.amount_refunded, 0) AS revenue
    FROM objects_latest AS ch
    LEFT JOIN customers AS c
        ON c.customer_id = ch.customer_id
        AND COALESCE(c.account, '') = COALESCE(ch.account, '')
        AND c.livemode = ch.livemode
    WHERE ch.object_type = 'charge' AND ch.status = 'succeeded' AND ch.currency IS NOT NULL
),
facts AS (
    SELECT
        account, livemode, month, currency, campaign, crm_account_id, erp_id, cost_center,
        revenue, CAST(0 AS BIGINT) AS mrr
    FROM charges
    UNION ALL
    SELECT
        account, livemode, month, currency, campaign, crm_account_id, erp_id, cost_center,
        CAST(0 AS BIGINT) AS revenue, mrr
    FROM subscription_months
    WHERE mrr <> 0 AND currency IS NOT NULL
),
dimensions AS (
    SELECT dimension
    FROM (VALUES ('campaign'), ('crm_account_id'), ('erp_id'), ('cost_center')) AS d (dimension)
),
labelled AS (
    SELECT
        f.account,
        f.livemode,
        f.month,
        f.currency,
        d.dimension,
        COALESCE(
            NULLIF(
                CASE d.dimension
                    WHEN 'campaign' THEN f.campaign
                    WHEN 'crm_account_id' THEN f.crm_account_id
                    WHEN 'erp_id' THEN f.erp_id
                    ELSE f.cost_center
                END,
                ''
            ),
            '(missing)'
        ) AS value,
        f.revenue,
        f.mrr
    FROM facts AS f
    CROSS JOIN dimensions AS d
)
SELECT account, livemode, month, currency, dimension, value, SUM(revenue) AS revenue, SUM(mrr) AS mrr
FROM labelled
GROUP BY account, livemode, month, currency, dimension, value
