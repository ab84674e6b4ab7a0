-- Core models and the dashboard contract. core.leads and marts.leads_total are rebuilt with their
-- full column sets; the targetologist mapping is one SQL function applied to leads, sales and
-- spend alike; dashboard_reader may read marts and nothing else.
DROP TABLE core.leads;
DROP TABLE marts.leads_total;

-- The old targetologist-mapper's rules from the Traffic project: the lowest priority number
-- wins (ties by rule id); no match is 'unattributed', never dropped.
CREATE FUNCTION core.attribute(
    src text, med text, camp text, cont text, term text
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT t.name
        FROM raw_supabase_traffic.targetologist_utm_rules r
        JOIN raw_supabase_traffic.targetologists t ON t.id = r.targetologist_id
        CROSS JOIN LATERAL (SELECT CASE r.utm_field
            WHEN 'utm_source' THEN src WHEN 'utm_medium' THEN med
            WHEN 'utm_campaign' THEN camp WHEN 'utm_content' THEN cont
            WHEN 'utm_term' THEN term END AS value) v
        WHERE r._deleted_at IS NULL AND t._deleted_at IS NULL AND t.active
          AND CASE r.match_type
                WHEN 'exact' THEN v.value = r.pattern
                WHEN 'prefix' THEN starts_with(v.value, r.pattern)
                WHEN 'contains' THEN strpos(v.value, r.pattern) > 0
              END
        ORDER BY r.priority, r.id
        LIMIT 1), 'unattributed')
$$;

CREATE TABLE core.leads (
    lead_key            text        PRIMARY KEY,
    source              text        NOT NULL,
    source_id           bigint      NOT NULL,
    funnel              text        NOT NULL,
    is_test             boolean     NOT NULL,
    created_at          timestamptz NOT NULL,
    report_day          date        NOT NULL,
    utm_source          text,
    utm_medium          text,
    utm_campaign        text,
    utm_content         text,
    utm_term            text,
    amocrm_lead_id      bigint,
    amocrm_pipeline_id  bigint,
    amocrm_status_id    bigint,
    synced_to_amocrm    boolean     NOT NULL,
    targetologist       text        NOT NULL
);
CREATE INDEX core_leads_day_idx ON core.leads (report_day, funnel);

CREATE TABLE core.sales (
    sale_key             text          PRIMARY KEY,
    source               text          NOT NULL,
    funnel               text          NOT NULL,
    amocrm_lead_id       bigint,
    sold_at              timestamptz   NOT NULL,
    report_day           date          NOT NULL,
    amount               numeric(14,2) NOT NULL,
    currency             text          NOT NULL,
    webhook_rows         integer       NOT NULL,
    webhook_pipeline_id  bigint,
    amocrm_pipeline_id   bigint,
    amocrm_status_id     bigint,
    pipeline_mismatch    boolean       NOT NULL,
    tracked              boolean       NOT NULL,
    utm_source           text,
    utm_medium           text,
    utm_campaign         text,
    utm_content          text,
    utm_term             text,
    targetologist        text          NOT NULL
);
CREATE INDEX core_sales_day_idx ON core.sales (report_day, funnel);

CREATE TABLE core.ad_spend_daily (
    ad_id            text          NOT NULL,
    date             date          NOT NULL,
    account_id       text          NOT NULL,
    campaign_id      text,
    campaign_name    text,
    currency         text          NOT NULL,
    spend            numeric(14,2) NOT NULL,
    spend_reporting  numeric(14,2),  -- NULL: no rate for the account's currency
    impressions      bigint        NOT NULL,
    clicks           bigint        NOT NULL,
    fb_leads         bigint        NOT NULL,
    targetologist    text          NOT NULL,
    PRIMARY KEY (ad_id, date)
);
CREATE INDEX core_ad_spend_day_idx ON core.ad_spend_daily (date, targetologist);

CREATE TABLE marts.leads_total (
    day         date   PRIMARY KEY,
    leads       bigint NOT NULL,
    test_leads  bigint NOT NULL
);

CREATE TABLE marts.leads_by_funnel (
    day               date   NOT NULL,
    funnel            text   NOT NULL,
    leads             bigint NOT NULL,
    synced_to_amocrm  bigint NOT NULL,
    PRIMARY KEY (day, funnel)
);

CREATE TABLE marts.sales_total (
    day       date          NOT NULL,
    funnel    text          NOT NULL,
    currency  text          NOT NULL,
    sales     bigint        NOT NULL,
    revenue   numeric(16,2) NOT NULL,
    PRIMARY KEY (day, funnel, currency)
);

CREATE TABLE marts.targetologist_daily (
    day             date          NOT NULL,
    targetologist   text          NOT NULL,
    currency        text          NOT NULL,  -- the reporting currency of spend and revenue
    spend           numeric(16,2),            -- NULL: some spend had no exchange rate
    impressions     bigint        NOT NULL,
    clicks          bigint        NOT NULL,
    leads           bigint        NOT NULL,
    sales           bigint        NOT NULL,
    revenue         numeric(16,2) NOT NULL,
    cpl             numeric(16,2),
    cpa             numeric(16,2),
    roas            numeric(16,4),
    is_provisional  boolean       NOT NULL,
    PRIMARY KEY (day, targetologist)
);
CREATE INDEX targetologist_daily_who_idx ON marts.targetologist_daily (targetologist, day);

CREATE TABLE marts.source_freshness (
    source           text        PRIMARY KEY,
    last_success_at  timestamptz,
    last_attempt_at  timestamptz NOT NULL,
    status           text        NOT NULL,  -- ok | error
    error            text
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dashboard_reader') THEN
        CREATE ROLE dashboard_reader NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA marts TO dashboard_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA marts TO dashboard_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA marts GRANT SELECT ON TABLES TO dashboard_reader;
