-- A day predicate an index on the instant can serve: the range from the first day's midnight
-- to the last's next one in `tz`, then the days themselves (`days` sorted; NULL: every day).
CREATE FUNCTION core.on_days(at timestamptz, tz text, days date[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT days IS NULL OR (
        at >= (days[1]::timestamp AT TIME ZONE tz)
        AND at < ((days[array_upper(days, 1)] + 1)::timestamp AT TIME ZONE tz)
        AND (at AT TIME ZONE tz)::date = ANY(days))
$$;

-- A model's content changes only with a build that rewrote rows: the quality check validates
-- that content once per suite (its expectations' values), then passes it unchanged.
ALTER TABLE ops.model_builds ADD COLUMN rewritten_build_id bigint;
ALTER TABLE ops.model_builds ADD COLUMN validated text;  -- '<rewritten_build_id>:<suite digest>'
