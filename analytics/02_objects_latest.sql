-- objects_latest: the latest known state of every Stripe object, one row per
-- (object_type, object_id, account, livemode).
--
-- Event rows (a state an event carried) and object rows (a snapshot a backfill read) compete on the
-- store's order_key, whose lexicographic order is the order in which states may replace each other: a late
-- or redelivered event never overrides a newer state, and a backfill snapshot of an object the events
-- already describe is the same object, not a second one. Ties (a redelivery) keep the greatest record_id.
CREATE OR REPLACE VIEW objects_latest AS
SELECT
    record_kind, event_date, record_id, event_id, event_type, event_time, account, livemode,
    object_type, object_id, customer_id, subscription_id, status, amount, amount_refunded, currency,
    created, order_key, mrr_amount, quantity, plan_interval, cancel_at_period_end, trial_end, canceled_at,
    erp_id, crm_account_id, campaign, cost_center, stale
FROM (
    SELECT
        r.*,
        row_number() OVER (
            PARTITION BY r.object_type, r.object_id, r.account, r.livemode
            ORDER BY r.order_key DESC NULLS LAST, r.record_id DESC
        ) AS state_rank
    FROM records AS r
    WHERE r.record_kind IN ('event', 'object') AND r.object_id IS NOT NULL
) AS states
WHERE state_rank = 1
