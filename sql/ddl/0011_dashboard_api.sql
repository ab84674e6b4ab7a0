-- The dashboard API: bearer tokens (stored as SHA-256 only), the per-targetologist marts the
-- dashboard's lead and sales endpoints read, and row-level security that scopes what
-- dashboard_reader sees to the token its session presents. The API sets the token per
-- transaction (set_config('dashboard.token', <token>, true)); a BI tool passes it once in its
-- connection string (options=-c dashboard.token=<token>). With no valid token dashboard_reader
-- reads marts.source_freshness only, so a bug in the API cannot widen what a token may see.
CREATE TABLE ops.api_tokens (
    id             bigserial   PRIMARY KEY,
    token_sha256   text        NOT NULL UNIQUE,
    label          text        NOT NULL,
    targetologist  text,                     -- NULL: an admin token, sees everything
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    revoked_at     timestamptz
);

-- The session's token resolved to its scope: no row for a missing, wrong, expired or revoked
-- token. SECURITY DEFINER: dashboard_reader may not read ops, only ask this question.
CREATE FUNCTION marts.dashboard_scope(OUT is_admin boolean, OUT targetologist text)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.targetologist IS NULL, t.targetologist
    FROM ops.api_tokens t
    WHERE t.token_sha256 = encode(sha256(convert_to(
              coalesce(current_setting('dashboard.token', true), ''), 'UTF8')), 'hex')
      AND t.revoked_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
$$;
REVOKE ALL ON FUNCTION marts.dashboard_scope() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION marts.dashboard_scope() TO dashboard_reader;

CREATE TABLE marts.leads_by_targetologist (
    day               date   NOT NULL,
    targetologist     text   NOT NULL,
    funnel            text   NOT NULL,
    leads             bigint NOT NULL,  -- test (ProofTest) leads included, as in leads_by_funnel
    test_leads        bigint NOT NULL,
    synced_to_amocrm  bigint NOT NULL,
    PRIMARY KEY (day, targetologist, funnel)
);
CREATE INDEX leads_by_targetologist_who_idx ON marts.leads_by_targetologist (targetologist, day);

CREATE TABLE marts.sales_by_targetologist (
    day            date          NOT NULL,
    targetologist  text          NOT NULL,
    funnel         text          NOT NULL,
    currency       text          NOT NULL,
    sales          bigint        NOT NULL,
    revenue        numeric(16,2) NOT NULL,
    PRIMARY KEY (day, targetologist, funnel, currency)
);
CREATE INDEX sales_by_targetologist_who_idx ON marts.sales_by_targetologist (targetologist, day);
GRANT SELECT ON marts.leads_by_targetologist, marts.sales_by_targetologist TO dashboard_reader;

-- A targetologist's token sees its own rows; an admin token every row. The scope is read once
-- per statement (an InitPlan), not once per row.
DO $$
DECLARE
    mart text;
BEGIN
    FOREACH mart IN ARRAY ARRAY['targetologist_daily', 'leads_by_targetologist',
                                'sales_by_targetologist'] LOOP
        EXECUTE format('ALTER TABLE marts.%I ENABLE ROW LEVEL SECURITY', mart);
        EXECUTE format('CREATE POLICY own_rows ON marts.%I FOR SELECT TO dashboard_reader USING ('
                       '(SELECT bool_or(s.is_admin) FROM marts.dashboard_scope() s) IS TRUE'
                       ' OR targetologist = (SELECT min(s.targetologist)'
                       ' FROM marts.dashboard_scope() s))', mart);
    END LOOP;
    -- school-wide figures and the diagnostics: admin tokens only
    FOREACH mart IN ARRAY ARRAY['leads_total', 'leads_by_funnel', 'sales_total',
                                'integration_health'] LOOP
        EXECUTE format('ALTER TABLE marts.%I ENABLE ROW LEVEL SECURITY', mart);
        EXECUTE format('CREATE POLICY admin_rows ON marts.%I FOR SELECT TO dashboard_reader USING ('
                       '(SELECT bool_or(s.is_admin) FROM marts.dashboard_scope() s) IS TRUE)',
                       mart);
    END LOOP;
END
$$;

-- A dashboard query that runs away is cut off, never holding the warehouse.
ALTER ROLE dashboard_reader SET statement_timeout = '10s';
