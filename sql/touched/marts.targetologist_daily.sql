-- The days of marts.targetologist_daily whose is_provisional flips: Facebook's today (the latest
-- day of its rows) moved from the last build's (the rows stamped up to %(since)s) to now's.
WITH today AS (
    SELECT max(date) FILTER (WHERE _loaded_at <= %(since)s) AS before, max(date) AS now
    FROM raw_facebook.ad_insights_daily
)
SELECT generate_series(
    least(before, now) - %(provisional_days)s::int,
    -- no Facebook day at the last build: every day provisional now was not then
    CASE WHEN before IS NULL THEN now
         ELSE greatest(before, now) - %(provisional_days)s::int - 1 END,
    interval '1 day')::date AS day
FROM today
