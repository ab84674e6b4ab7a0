-- Business SQL lives in sql/functions/, re-applied when its file changes (not a migration: a
-- rule's change needs no new migration). core.attribute(), created by 0006 and replaced by 0010,
-- stays as it is here: sql/functions/attribute.sql replaces it right after the migrations.
CREATE TABLE ops.sql_definitions (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
