-- succeeded_charges: one row per charge whose latest state is succeeded (a charge refunded later still
-- succeeded), per account (null: the platform's own) and mode (livemode): the payments that
-- revenue_by_metadata, cohort_retention and clv count.
--
-- * month = the month the charge was created (else its event's): a later refund lowers that month.
-- * revenue = amount - amount_refunded in the charge's latest state (invoices and payment intents are not
--   counted again: a paid invoice has its charge).
-- * A metadata value (campaign, crm_account_id, erp_id, cost_center) is the charge's own, else its
--   customer's latest (as a subscription's is in subscription_months).
-- * customer_id and currency may be null: each view that reads this one says which charges it needs.
CREATE OR REPLACE VIEW succeeded_charges AS
SELECT
    ch.account,
    ch.livemode,
    ch.object_id AS charge_id,
    ch.customer_id,
    ch.currency,
    CAST(date_trunc('month', COALESCE(ch.created, ch.event_time)) AS DATE) AS month,
    COALESCE(ch.amount, 0) - COALESCE(ch.amount_refunded, 0) AS revenue,
    COALESCE(ch.campaign, c.campaign) AS campaign,
    COALESCE(ch.crm_account_id, c.crm_account_id) AS crm_account_id,
    COALESCE(ch.erp_id, c.erp_id) AS erp_id,
    COALESCE(ch.cost_center, c.cost_center) AS cost_center
FROM objects_latest AS ch
LEFT JOIN objects_latest AS c
    ON c.object_type = 'customer'
    AND c.object_id = ch.customer_id
    AND COALESCE(c.account, '') = COALESCE(ch.account, '')
    AND c.livemode = ch.livemode
WHERE ch.object_type = 'charge' AND ch.status = 'succeeded'
