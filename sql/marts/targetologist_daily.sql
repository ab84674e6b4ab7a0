-- marts.targetologist_daily: spend, leads, sales and their ratios per reporting day and targetologist, money in the reporting currency.
-- reads: core.ad_spend_daily, core.leads, core.sales, raw_facebook.ad_insights_daily
WITH spend AS (
    SELECT date AS day, targetologist,
           -- one missing exchange rate makes the day's spend unknown, never understated
           CASE WHEN bool_and(spend_reporting IS NOT NULL) THEN sum(spend_reporting) END AS spend,
           sum(impressions) AS impressions, sum(clicks) AS clicks
    FROM core.ad_spend_daily WHERE core.in_days(date, %(days)s) GROUP BY 1, 2
), leads AS (
    SELECT report_day AS day, targetologist, count(*) AS leads
    FROM core.leads WHERE NOT is_test AND core.in_days(report_day, %(days)s) GROUP BY 1, 2
), sales AS (
    SELECT report_day AS day, targetologist, count(*) AS sales,
           sum(round(amount * CASE WHEN currency = %(currency)s THEN 1
                                   ELSE (%(fx)s::jsonb ->> currency)::numeric END, 2)) AS revenue
    FROM core.sales WHERE core.in_days(report_day, %(days)s) GROUP BY 1, 2
), facebook_today AS (
    SELECT max(date) AS today FROM raw_facebook.ad_insights_daily
), joined AS (
    SELECT coalesce(s.day, l.day, o.day) AS day,
           coalesce(s.targetologist, l.targetologist, o.targetologist) AS targetologist,
           CASE WHEN s.day IS NULL THEN 0 ELSE s.spend END AS spend,
           coalesce(s.impressions, 0) AS impressions, coalesce(s.clicks, 0) AS clicks,
           coalesce(l.leads, 0) AS leads, coalesce(o.sales, 0) AS sales,
           coalesce(o.revenue, 0) AS revenue
    FROM spend s
    FULL JOIN leads l ON l.day = s.day AND l.targetologist = s.targetologist
    FULL JOIN sales o ON o.day = coalesce(s.day, l.day)
                     AND o.targetologist = coalesce(s.targetologist, l.targetologist)
)
SELECT j.day, j.targetologist, %(currency)s AS currency, j.spend, j.impressions, j.clicks,
       j.leads, j.sales, j.revenue,
       round(j.spend / nullif(j.leads, 0), 2) AS cpl,
       round(j.spend / nullif(j.sales, 0), 2) AS cpa,
       round(j.revenue / nullif(j.spend, 0), 4) AS roas,
       -- the days Facebook may still restate (resources/facebook.py's PROVISIONAL_DAYS)
       coalesce(j.day >= f.today - %(provisional_days)s::int, false) AS is_provisional
FROM joined j CROSS JOIN facebook_today f
