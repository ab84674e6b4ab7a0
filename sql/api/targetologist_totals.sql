-- GET /api/traffic-dashboard/targetologist-daily's totals: per targetologist over the range, ratios from the sums rounded as the marts round them; one day's unknown spend makes the range's unknown.
WITH sums AS (
    SELECT targetologist,
           CASE WHEN bool_and(spend IS NOT NULL) THEN sum(spend) END AS spend,
           sum(leads)::bigint AS leads, sum(sales)::bigint AS sales, sum(revenue) AS revenue
    FROM marts.targetologist_daily
    WHERE day BETWEEN %(from)s AND %(to)s
      AND (%(targetologist)s::text IS NULL OR targetologist = %(targetologist)s::text)
    GROUP BY targetologist
)
SELECT targetologist, spend::float8, leads, sales, revenue::float8,
       round(spend / nullif(leads, 0), 2)::float8 AS cpl,
       round(spend / nullif(sales, 0), 2)::float8 AS cpa,
       round(revenue / nullif(spend, 0), 4)::float8 AS roas
FROM sums
ORDER BY targetologist
