-- POST /api/admin/diagnostics: the latest result of every diagnostic, as the checks stored it.
SELECT name, status, message, details, checked_at
FROM marts.integration_health
ORDER BY name
