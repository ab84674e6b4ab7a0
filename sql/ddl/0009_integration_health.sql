-- marts.integration_health: the latest result of every integration diagnostic (asset checks and
-- `python -m checks.diagnostics`), what the dashboard's health panel reads.
CREATE TABLE marts.integration_health (
    name        text        PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('ok', 'warning', 'error')),
    message     text        NOT NULL,
    details     jsonb       NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON marts.integration_health TO dashboard_reader;
