-- GET /api/traffic-dashboard/sales/total: sales and revenue per day, funnel and currency of the range, and per funnel and currency over it (rows whose day is NULL).
SELECT day, funnel, currency, sum(sales)::bigint AS sales, sum(revenue)::float8 AS revenue
FROM marts.sales_by_targetologist
WHERE day BETWEEN %(from)s AND %(to)s
  AND (%(funnel)s::text IS NULL OR funnel = %(funnel)s::text)
  AND (%(targetologist)s::text IS NULL OR targetologist = %(targetologist)s::text)
GROUP BY GROUPING SETS ((day, funnel, currency), (funnel, currency))
ORDER BY day NULLS FIRST, funnel, currency
