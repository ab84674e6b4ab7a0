-- Attribution (business logic, not schema): which targetologist a lead, sale or ad is credited
-- to. The first active rule that matches the UTM field it names wins (by priority, then rule id);
-- no match is 'unattributed', never dropped. Re-applied whenever this file changes (its checksum
-- is in ops.sql_definitions); it reads the staging views, created before it.
CREATE OR REPLACE FUNCTION core.attribute(
    src text, med text, camp text, cont text, term text
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT t.name
        FROM stg_supabase_traffic.targetologist_utm_rules r
        JOIN stg_supabase_traffic.targetologists t ON t.id = r.targetologist_id
        CROSS JOIN LATERAL (SELECT CASE r.utm_field
            WHEN 'utm_source' THEN src WHEN 'utm_medium' THEN med
            WHEN 'utm_campaign' THEN camp WHEN 'utm_content' THEN cont
            WHEN 'utm_term' THEN term END AS value) v
        WHERE r._deleted_at IS NULL AND t._deleted_at IS NULL AND t.active
          AND CASE r.match_type
                WHEN 'exact' THEN v.value = r.pattern
                WHEN 'prefix' THEN starts_with(v.value, r.pattern)
                WHEN 'contains' THEN strpos(v.value, r.pattern) > 0
                WHEN 'like' THEN v.value LIKE r.pattern
              END
        ORDER BY r.priority, r.id
        LIMIT 1), 'unattributed')
$$;
