-- GET /api/traffic-dashboard/leads/total: leads (test leads apart) per day of the range; row-level security keeps a targetologist's token to its own rows.
SELECT day, sum(leads - test_leads)::bigint AS leads, sum(test_leads)::bigint AS test_leads
FROM marts.leads_by_targetologist
WHERE day BETWEEN %(from)s AND %(to)s
  AND (%(targetologist)s::text IS NULL OR targetologist = %(targetologist)s::text)
GROUP BY day
ORDER BY day
