-- Source contracts: raw Supabase tables now mirror whatever columns each source serves and are
-- created by the loader from discovery, so the fixed-shape tables of 0002 go (their cursors with
-- them: the next run re-reads each table whole). Core reads the canonical columns through one
-- generated view per table in the stg_* schemas; keys there are text (integer, uuid or slug).
DROP TABLE raw_supabase_main.landing_leads, raw_supabase_main.prooftest_leads,
    raw_supabase_main.express_course_sales, raw_supabase_main.flagship_course_sales,
    raw_supabase_tripwire.tripwire_users, raw_supabase_tripwire.tripwire_purchases,
    raw_supabase_traffic.all_sales_tracking, raw_supabase_traffic.targetologists,
    raw_supabase_traffic.targetologist_utm_rules CASCADE;
DELETE FROM ops.cursors WHERE source LIKE 'supabase\_%';

CREATE SCHEMA stg_supabase_main;
CREATE SCHEMA stg_supabase_tripwire;
CREATE SCHEMA stg_supabase_traffic;

-- Per source table: the columns it served at the last load, the shape the team accepted (the
-- schema-drift check compares the two), and how the contract met it (key, cursor, feeds).
CREATE TABLE ops.source_schemas (
    source       text        NOT NULL,
    entity       text        NOT NULL,
    served       jsonb       NOT NULL,  -- [[column, type], ...] as discovery saw it last
    accepted     jsonb       NOT NULL,  -- the same, as of the last accepted shape
    plan         jsonb       NOT NULL,
    inferred     boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, entity)
);

ALTER TABLE core.leads ALTER COLUMN source_id TYPE text USING source_id::text;

-- The attribution rules now come through the staging views, and a rules table may hold SQL LIKE
-- patterns (its contract maps match_type to the constant 'like'). The views are created right
-- after the migrations, hence no body check here.
SET LOCAL check_function_bodies = off;
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
