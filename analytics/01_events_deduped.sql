-- events_deduped: every Stripe event row once, however many times it was delivered.
--
-- Delivery is at-least-once (webhook retries, the processor's republication, a replay from the bus
-- archive, a catch-up that overlaps the webhooks), so one record_id can arrive several times. The copies
-- describe the same event; one is kept (the greatest order_key, then event_date, so the choice does not
-- depend on the order the files are read in).
CREATE OR REPLACE VIEW events_deduped AS
SELECT
    record_kind, event_date, record_id, event_id, event_type, event_time, account, livemode,
    object_type, object_id, customer_id, subscription_id, status, amount, amount_refunded, currency,
    created, order_key, mrr_amount, quantity, plan_interval, cancel_at_period_end, trial_end, canceled_at,
    erp_id, crm_account_id, campaign, cost_center, signal_kind, signal_level, signal_score, stale
FROM (
    SELECT
        r.*,
        row_number() OVER (
            PARTITION BY r.record_id
            ORDER BY r.order_key DESC NULLS LAST, r.event_date DESC NULLS LAST
        ) AS copy_rank
    FROM records AS r
    WHERE r.record_kind = 'event'
) AS copies
WHERE copy_rank = 1
