-- marts.leads_by_funnel: leads per reporting day and funnel (ProofTest test leads as their own funnel), and how many reached AmoCRM.
-- reads: core.leads
SELECT report_day AS day, funnel, count(*) AS leads,
       count(*) FILTER (WHERE synced_to_amocrm) AS synced_to_amocrm
FROM core.leads
WHERE core.in_days(report_day, %(days)s)
GROUP BY report_day, funnel
