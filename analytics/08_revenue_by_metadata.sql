-- revenue_by_metadata: revenue and MRR by account (null: the platform's own), mode (livemode), month and
-- currency for each value of each metadata dimension (campaign, crm_account_id, erp_id, cost_center); no
-- value is its own bucket, '(missing)', so gaps in the metadata show up as an amount instead of disappearing.
--
-- * revenue = succeeded charges net of refunds, in the month the charge was created (succeeded_charges:
--   a later refund lowers the charge's month; invoices and payment intents are not counted again).
-- * mrr = the MRR at the month's end (subscription_months).
-- * A charge's dimension value is its own metadata, else its customer's latest (succeeded_charges); a
--   subscription's is its own, else its customer's latest (subscription_months).
-- Every dimension adds up to the same totals per account, mode, month and currency; an account's and a
-- mode's numbers are never added together.
CREATE OR REPLACE VIEW revenue_by_metadata AS
WITH facts AS (
    SELECT
        account, livemode, month, currency, campaign, crm_account_id, erp_id, cost_center,
        revenue, CAST(0 AS BIGINT) AS mrr
    FROM succeeded_charges
    WHERE currency IS NOT NULL
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
