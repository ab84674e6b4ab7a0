-- AmoCRM: the OAuth token pair (rotated on every refresh), and the raw leads, pipelines,
-- statuses, lead events and account settings as received.
CREATE TABLE ops.oauth_tokens (
    integration        text        PRIMARY KEY,
    access_token       text        NOT NULL,
    refresh_token      text,
    access_expires_at  timestamptz,
    refresh_issued_at  timestamptz,
    refreshes          integer     NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE raw_amocrm.account (
    id           bigint      PRIMARY KEY,
    name         text,
    subdomain    text,
    timezone     text,
    currency     text,
    _raw         jsonb       NOT NULL,
    _loaded_at   timestamptz NOT NULL DEFAULT now(),
    _deleted_at  timestamptz
);

CREATE TABLE raw_amocrm.leads (
    id                   bigint      PRIMARY KEY,
    name                 text,
    price                numeric(14,2),
    pipeline_id          bigint      NOT NULL,
    status_id            bigint      NOT NULL,
    responsible_user_id  bigint,
    loss_reason_id       bigint,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    closed_at            timestamptz,
    is_deleted           boolean     NOT NULL,
    utm_source           text,
    utm_medium           text,
    utm_campaign         text,
    utm_content          text,
    utm_term             text,
    custom_fields        jsonb,
    _raw                 jsonb       NOT NULL,
    _loaded_at           timestamptz NOT NULL DEFAULT now(),
    _deleted_at          timestamptz
);
CREATE INDEX amocrm_leads_status_idx ON raw_amocrm.leads (pipeline_id, status_id);

CREATE TABLE raw_amocrm.pipelines (
    id           bigint      PRIMARY KEY,
    name         text        NOT NULL,
    sort         integer,
    is_main      boolean,
    is_archive   boolean,
    _raw         jsonb       NOT NULL,
    _loaded_at   timestamptz NOT NULL DEFAULT now(),
    _deleted_at  timestamptz
);

CREATE TABLE raw_amocrm.statuses (
    pipeline_id  bigint      NOT NULL,
    id           bigint      NOT NULL,
    name         text        NOT NULL,
    sort         integer,
    type         integer,
    is_editable  boolean,
    _raw         jsonb       NOT NULL,
    _loaded_at   timestamptz NOT NULL DEFAULT now(),
    _deleted_at  timestamptz,
    PRIMARY KEY (pipeline_id, id)
);

CREATE TABLE raw_amocrm.lead_events (
    id            text        PRIMARY KEY,
    type          text        NOT NULL,
    entity_id     bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    value_before  jsonb,
    value_after   jsonb,
    _raw          jsonb       NOT NULL,
    _loaded_at    timestamptz NOT NULL DEFAULT now(),
    _deleted_at   timestamptz
);
CREATE INDEX amocrm_lead_events_entity_idx ON raw_amocrm.lead_events (type, entity_id);
