-- Incremental models by their declared inputs: each build gets an id, and the days it rebuilt
-- (NULL: every day) are kept for the models built from it, which rebuild exactly those days;
-- indexes make "which raw rows changed since" an index probe, so an idle build costs little.
CREATE SEQUENCE ops.model_build_ids;
ALTER TABLE ops.model_builds ADD COLUMN build_id bigint;
CREATE TABLE ops.model_build_days (
    build_id  bigint NOT NULL,
    model     text   NOT NULL,
    day       date   -- NULL: every day
);
CREATE INDEX model_build_days_idx ON ops.model_build_days (model, build_id);

-- the day predicate a model applies where it aggregates (days NULL: a full build)
CREATE FUNCTION core.in_days(day date, days date[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT days IS NULL OR day = ANY(days) $$;

DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT c.table_schema, c.table_name FROM information_schema.columns c
             JOIN information_schema.tables r USING (table_schema, table_name)
             WHERE c.column_name = '_loaded_at' AND r.table_type = 'BASE TABLE'
               AND c.table_schema LIKE 'raw\_%'
    LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I (_loaded_at)',
                       t.table_name || '_loaded_idx', t.table_schema, t.table_name);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I (_deleted_at)'
                       ' WHERE _deleted_at IS NOT NULL',
                       t.table_name || '_deleted_idx', t.table_schema, t.table_name);
    END LOOP;
END $$;
