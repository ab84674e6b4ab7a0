-- How many rows each model holds after its last build, counted from the build's own DELETE and
-- INSERT (the materialization's dagster/row_count without a count(*) over the table); NULL until
-- a build counts it.
ALTER TABLE ops.model_builds ADD COLUMN row_count bigint;
