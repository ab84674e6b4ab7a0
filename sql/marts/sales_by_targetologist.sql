-- marts.sales_by_targetologist: sales and revenue per reporting day, targetologist, funnel and currency; what a targetologist's token reads instead of marts.sales_total.
-- reads: core.sales
SELECT report_day AS day, targetologist, funnel, currency, count(*) AS sales,
       sum(amount) AS revenue
FROM core.sales
WHERE core.in_days(report_day, %(days)s)
GROUP BY report_day, targetologist, funnel, currency
