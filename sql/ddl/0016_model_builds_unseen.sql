-- A mart built before every core model had a build reflects none of their raw rows: its
-- watermark is NULL, and its next build recomputes every day.
ALTER TABLE ops.model_builds ALTER COLUMN watermark DROP NOT NULL;
