-- GET /api/traffic-dashboard/leads/total: leads (test leads apart) per day of the range, and the range's total (the row whose day is NULL); row-level security keeps a targetologist's token to its own rows.
SELECT day, coalesce(sum(leads - test_leads), 0)::bigint AS leads,
       coalesce(sum(test_leads), 0)::bigint AS test_leads
FROM marts.leads_by_targetologist
WHERE day BETWEEN %(from)s AND %(to)s
  AND (%(targetologist)s::text IS NULL OR targetologist = %(targetologist)s::text)
GROUP BY GROUPING SETS ((day), ())
ORDER BY day NULLS FIRST
