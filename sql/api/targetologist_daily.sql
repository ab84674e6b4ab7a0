-- GET /api/traffic-dashboard/targetologist-daily: a targetologist's days (an admin's: everyone's) as marts.targetologist_daily holds them.
SELECT day, targetologist, currency, spend::float8, impressions, clicks, leads, sales,
       revenue::float8, cpl::float8, cpa::float8, roas::float8, is_provisional
FROM marts.targetologist_daily
WHERE day BETWEEN %(from)s AND %(to)s
  AND (%(targetologist)s::text IS NULL OR targetologist = %(targetologist)s::text)
ORDER BY day, targetologist
