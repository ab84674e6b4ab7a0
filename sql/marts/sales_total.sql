-- marts.sales_total: sales and revenue per reporting day, funnel and currency.
-- reads: core.sales
SELECT report_day AS day, funnel, currency, count(*) AS sales, sum(amount) AS revenue
FROM core.sales
WHERE core.in_days(report_day, %(days)s)
GROUP BY report_day, funnel, currency
