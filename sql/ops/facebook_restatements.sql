-- ops.facebook_restatements: spend per account and day that the staged insights change (a row
-- staged by its key alone had the stored row's hash: it changes nothing).
INSERT INTO ops.facebook_restatements (account_id, date, ads, spend_before, spend_after)
SELECT s.account_id, s.date, count(*), sum(t.spend), sum(s.spend)
FROM (SELECT DISTINCT ON (ad_id, date) ad_id, date, account_id, spend, _unchanged
      FROM _staging ORDER BY ad_id, date, _seq DESC) s
JOIN raw_facebook.ad_insights_daily t USING (ad_id, date)
WHERE s._unchanged IS NULL AND t.spend IS DISTINCT FROM s.spend
GROUP BY s.account_id, s.date
