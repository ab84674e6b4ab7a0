-- GET /api/traffic-dashboard/leads/by-funnel: leads and how many reached AmoCRM per day and funnel of the range, and per funnel over it (rows whose day is NULL).
SELECT day, funnel, sum(leads)::bigint AS leads, sum(synced_to_amocrm)::bigint AS synced_to_amocrm
FROM marts.leads_by_targetologist
WHERE day BETWEEN %(from)s AND %(to)s
  AND (%(funnel)s::text IS NULL OR funnel = %(funnel)s::text)
  AND (%(targetologist)s::text IS NULL OR targetologist = %(targetologist)s::text)
GROUP BY GROUPING SETS ((day, funnel), (funnel))
ORDER BY day NULLS FIRST, funnel
