-- A keyed build (core.leads) recomputes the rows of the lead keys ('<source>:<id>') its inputs
-- changed, not whole days: an hour's deals moving reach leads created over months.
-- The ids of `source` among `keys`, for an index on the id to serve the model's predicate.
CREATE FUNCTION core.key_ids(keys text[], source text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(substr(k, length(source) + 2)), '{}')
    FROM unnest(keys) AS k WHERE starts_with(k, source || ':')
$$;

-- Whether a row of `source` with this id is to be built: every row when `keys` is NULL (a full
-- build or a day-based one), else the ones `keys` names; on_int_keys for an integer id.
CREATE FUNCTION core.on_keys(id text, source text, keys text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT keys IS NULL OR id = ANY(core.key_ids(keys, source))
$$;

CREATE FUNCTION core.on_int_keys(id bigint, source text, keys text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT keys IS NULL OR id = ANY(core.key_ids(keys, source)::bigint[])
$$;
