-- marts.source_freshness: per source, its last successful load, its last attempt, and the error that keeps it stale (any entity whose latest attempt failed).
-- reads: ops.source_attempts
WITH latest AS (
    SELECT DISTINCT ON (source, entity) source, entity, attempted_at, succeeded, error
    FROM ops.source_attempts
    ORDER BY source, entity, attempted_at DESC, id DESC
)
SELECT l.source,
       (SELECT max(s.attempted_at) FROM ops.source_attempts s
        WHERE s.source = l.source AND s.succeeded) AS last_success_at,
       max(l.attempted_at) AS last_attempt_at,
       CASE WHEN bool_and(l.succeeded) THEN 'ok' ELSE 'error' END AS status,
       string_agg(DISTINCT l.error, '; ') FILTER (WHERE NOT l.succeeded) AS error
FROM latest l
GROUP BY l.source
