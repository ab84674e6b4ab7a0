-- Every data response's freshness block: each source's last success, last attempt and error.
SELECT source, last_success_at, last_attempt_at, status, error
FROM marts.source_freshness
ORDER BY source
