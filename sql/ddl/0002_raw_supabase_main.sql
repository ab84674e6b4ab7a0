-- Raw tables of the Supabase Main (landing) project: source columns typed, the record as received.
CREATE TABLE raw_supabase_main.landing_leads (
    id                bigint      PRIMARY KEY,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    name              text,
    phone             text,
    email             text,
    funnel            text,
    utm_source        text,
    utm_medium        text,
    utm_campaign      text,
    utm_content       text,
    utm_term          text,
    amocrm_lead_id    bigint,
    synced_to_amocrm  boolean     NOT NULL DEFAULT false,
    synced_at         timestamptz,
    _raw              jsonb       NOT NULL,
    _loaded_at        timestamptz NOT NULL DEFAULT now(),
    _deleted_at       timestamptz
);
CREATE INDEX landing_leads_updated_idx ON raw_supabase_main.landing_leads (updated_at, id);
