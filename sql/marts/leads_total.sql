-- marts.leads_total: leads per reporting day; test (ProofTest) leads counted apart.
-- reads: core.leads
SELECT report_day                          AS day,
       count(*) FILTER (WHERE NOT is_test) AS leads,
       count(*) FILTER (WHERE is_test)     AS test_leads
FROM core.leads
WHERE core.in_days(report_day, %(days)s)
GROUP BY report_day
