-- The first core model and mart: unified leads and the dashboard's daily lead totals.
CREATE TABLE core.leads (
    lead_key          text        PRIMARY KEY,
    source            text        NOT NULL,
    source_id         bigint      NOT NULL,
    funnel            text        NOT NULL,
    is_test           boolean     NOT NULL,
    created_at        timestamptz NOT NULL,
    report_day        date        NOT NULL,
    utm_source        text,
    utm_medium        text,
    utm_campaign      text,
    utm_content       text,
    utm_term          text,
    amocrm_lead_id    bigint,
    synced_to_amocrm  boolean     NOT NULL
);
CREATE INDEX core_leads_day_idx ON core.leads (report_day, funnel);

CREATE TABLE marts.leads_total (
    day         date   PRIMARY KEY,
    leads       bigint NOT NULL,
    test_leads  bigint NOT NULL
);
