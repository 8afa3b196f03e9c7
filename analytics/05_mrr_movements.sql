-- mrr_movements: MRR by account, mode, month and currency, and how it moved from the previous month.
-- account (null: the platform's own) and livemode lead every summary view: an account's and a mode's
-- numbers are never added together, so test-mode and Connect-account money stays out of the platform's.
--
-- Per customer (account, livemode, customer_id) and currency, comparing the MRR at this month's end (mrr)
-- with the previous month's end (previous):
-- * new          previous = 0, mrr > 0, and the customer never had MRR before: + mrr
-- * reactivated  previous = 0, mrr > 0, and the customer had MRR in an earlier month: + mrr
-- * expansion    previous > 0 and mrr > previous (upgrade, more seats): + (mrr - previous)
-- * contraction  previous > 0 and 0 < mrr < previous (downgrade, fewer seats, a new coupon): mrr - previous (< 0)
-- * churned      previous > 0 and mrr = 0 (canceled, ended, unpaid): - previous (< 0)
-- contraction and churned are negative, so that for every account, mode and currency
--   mrr = previous month's mrr + new + expansion + contraction + churned + reactivated.
-- customers counts the customers with MRR > 0 at the month's end.
CREATE OR REPLACE VIEW mrr_movements AS
SELECT
    account,
    livemode,
    month,
    currency,
    SUM(mrr) AS mrr,
    SUM(CASE WHEN previous_mrr = 0 AND mrr > 0 AND had_mrr_before = 0 THEN mrr ELSE 0 END) AS new,
    SUM(CASE WHEN previous_mrr > 0 AND mrr > previous_mrr THEN mrr - previous_mrr ELSE 0 END) AS expansion,
    SUM(
        CASE WHEN previous_mrr > 0 AND mrr > 0 AND mrr < previous_mrr THEN mrr - previous_mrr ELSE 0 END
    ) AS contraction,
    SUM(CASE WHEN previous_mrr > 0 AND mrr = 0 THEN 0 - previous_mrr ELSE 0 END) AS churned,
    SUM(CASE WHEN previous_mrr = 0 AND mrr > 0 AND had_mrr_before = 1 THEN mrr ELSE 0 END) AS reactivated,
    SUM(CASE WHEN mrr > 0 THEN 1 ELSE 0 END) AS customers
FROM customer_mrr_months
GROUP BY account, livemode, month, currency
