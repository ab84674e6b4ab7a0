-- warehouse_key_digest: the traffic warehouse's deletion detection in a few requests, for a project read through its REST API.
-- Per key bucket (bounds sorted, smallest first; bucket i holds keys in [bounds[i], bounds[i+1])),
-- its row count and an order-independent digest of its keys' text; with `buckets`, the keys of
-- those buckets instead. One jsonb value either way, so PostgREST's max-rows does not cap it.
-- Install: run this file in the project's SQL editor, then `NOTIFY pgrst, 'reload schema';`.
-- It runs as its caller (SECURITY INVOKER): it reads only tables, and rows, the caller may read.
CREATE OR REPLACE FUNCTION warehouse_key_digest(
    table_name text, key_column text, bounds text[], buckets integer[] DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY INVOKER
AS $$
DECLARE
    target regclass := to_regclass(quote_ident(table_name));
    key_type text;
    collatable boolean;
    sorted text;
    result jsonb;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'relation "%" does not exist', table_name USING ERRCODE = '42P01';
    END IF;
    IF NOT has_table_privilege(target, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', table_name USING ERRCODE = '42501';
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod), t.typcollation <> 0
      INTO key_type, collatable
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = target AND a.attname = key_column AND a.attnum > 0
       AND NOT a.attisdropped;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'column %.% does not exist', table_name, key_column
            USING ERRCODE = '42703';
    END IF;
    -- text keys in byte order: the warehouse cuts its buckets the same way, whatever either
    -- database's default collation
    sorted := format('%I', key_column) || CASE WHEN collatable THEN ' COLLATE "C"' ELSE '' END;
    IF buckets IS NULL THEN
        EXECUTE format(
            'SELECT coalesce(jsonb_agg(jsonb_build_array(b, n, d)), ''[]'') FROM ('
            'SELECT width_bucket(%s, $1::%s[]) AS b, count(*) AS n,'
            ' bit_xor((''x'' || left(md5(%I::text), 16))::bit(64)::bigint) AS d'
            ' FROM %s GROUP BY 1) s', sorted, key_type, key_column, target)
            INTO result USING bounds;
    ELSE
        EXECUTE format(
            'SELECT coalesce(jsonb_agg(%I::text), ''[]'') FROM %s'
            ' WHERE width_bucket(%s, $1::%s[]) = ANY($2)', key_column, target, sorted, key_type)
            INTO result USING bounds, buckets;
    END IF;
    RETURN result;
END
$$;
