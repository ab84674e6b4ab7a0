-- Schemas of the warehouse and the ops tables every loader writes: cursors, load log, quarantine.
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS raw_amocrm;
CREATE SCHEMA IF NOT EXISTS raw_facebook;
CREATE SCHEMA IF NOT EXISTS raw_supabase_main;
CREATE SCHEMA IF NOT EXISTS raw_supabase_tripwire;
CREATE SCHEMA IF NOT EXISTS raw_supabase_traffic;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;

CREATE TABLE ops.cursors (
    source      text        NOT NULL,
    entity      text        NOT NULL,
    cursor      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, entity)
);

CREATE TABLE ops.load_log (
    id                bigserial   PRIMARY KEY,
    source            text        NOT NULL,
    entity            text        NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    rows_in           bigint      NOT NULL,
    rows_inserted     bigint      NOT NULL,
    rows_updated      bigint      NOT NULL,
    rows_unchanged    bigint      NOT NULL,
    rows_quarantined  bigint      NOT NULL DEFAULT 0,
    cursor_before     jsonb,
    cursor_after      jsonb,
    notes             text
);
CREATE INDEX load_log_source_entity_idx ON ops.load_log (source, entity, finished_at DESC);

CREATE TABLE ops.quarantine (
    id              bigserial   PRIMARY KEY,
    source          text        NOT NULL,
    entity          text        NOT NULL,
    record_key      text,
    reason          text        NOT NULL,
    record          jsonb       NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
-- a re-run that meets the same bad record again refreshes its row instead of adding one
CREATE UNIQUE INDEX quarantine_record_uidx
    ON ops.quarantine (source, entity, (coalesce(record_key, '')), reason);

-- One row per load attempt of a source entity, failed or not: what source_freshness reads.
CREATE TABLE ops.source_attempts (
    id            bigserial   PRIMARY KEY,
    source        text        NOT NULL,
    entity        text        NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    succeeded     boolean     NOT NULL,
    error         text,
    run_id        text
);
CREATE INDEX source_attempts_idx ON ops.source_attempts (source, entity, attempted_at DESC);
