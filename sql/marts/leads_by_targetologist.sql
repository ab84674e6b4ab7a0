-- marts.leads_by_targetologist: leads per reporting day, targetologist and funnel (test leads included and also counted apart), and how many reached AmoCRM; what a targetologist's token reads instead of the school-wide lead marts.
-- reads: core.leads
SELECT report_day AS day, targetologist, funnel, count(*) AS leads,
       count(*) FILTER (WHERE is_test) AS test_leads,
       count(*) FILTER (WHERE synced_to_amocrm) AS synced_to_amocrm
FROM core.leads
WHERE core.in_days(report_day, %(days)s)
GROUP BY report_day, targetologist, funnel
