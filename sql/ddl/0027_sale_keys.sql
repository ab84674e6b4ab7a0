-- core.sales is built by key too ('deal:<deal id>', 'deal:<course>:<webhook id>' for a webhook
-- naming no deal, 'tripwire:<purchase id>'): a key list mixes integer and text ids.
-- The integer ids of `source` among `keys` (the others are not this source's integer ids).
CREATE FUNCTION core.key_int_ids(keys text[], source text) RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(k::bigint), '{}')
    FROM unnest(core.key_ids(keys, source)) AS k WHERE k ~ '^-?[0-9]{1,18}$'
$$;

CREATE OR REPLACE FUNCTION core.on_int_keys(id bigint, source text, keys text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT keys IS NULL OR id = ANY(core.key_int_ids(keys, source))
$$;
