-- marts.sales_total: sales and revenue per reporting day, funnel and currency.
SELECT report_day AS day, funnel, currency, count(*) AS sales, sum(amount) AS revenue
FROM core.sales
GROUP BY report_day, funnel, currency
