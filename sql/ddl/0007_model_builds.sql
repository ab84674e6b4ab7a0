-- One row per core/marts model: when it was last built, from which raw changes, with which
-- parameters, and how many days it rebuilt (NULL: all of them).
CREATE TABLE ops.model_builds (
    model         text        PRIMARY KEY,
    watermark     timestamptz NOT NULL,  -- raw rows stamped after this are not in the build
    params_hash   text        NOT NULL,
    built_at      timestamptz NOT NULL DEFAULT now(),
    days_rebuilt  integer,
    rows_written  bigint      NOT NULL
);
