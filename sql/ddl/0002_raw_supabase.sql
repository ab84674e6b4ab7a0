-- Raw tables of the three Supabase projects: source columns typed, the record as received in
-- _raw, when we loaded it, and when a hard delete in the source was detected (_deleted_at).
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
    synced_to_amocrm  boolean     NOT NULL,
    synced_at         timestamptz,
    _raw              jsonb       NOT NULL,
    _loaded_at        timestamptz NOT NULL DEFAULT now(),
    _deleted_at       timestamptz
);

CREATE TABLE raw_supabase_main.prooftest_leads (
    id            bigint      PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    name          text,
    phone         text,
    email         text,
    utm_source    text,
    utm_medium    text,
    utm_campaign  text,
    utm_content   text,
    utm_term      text,
    _raw          jsonb       NOT NULL,
    _loaded_at    timestamptz NOT NULL DEFAULT now(),
    _deleted_at   timestamptz
);

CREATE TABLE raw_supabase_main.express_course_sales (
    id              bigint        PRIMARY KEY,
    amocrm_lead_id  bigint,
    pipeline_id     bigint,
    status_id       bigint,
    amount          numeric(14,2),
    currency        text,
    utm_source      text,
    utm_medium      text,
    utm_campaign    text,
    utm_content     text,
    utm_term        text,
    created_at      timestamptz   NOT NULL,
    payload         jsonb,
    _raw            jsonb         NOT NULL,
    _loaded_at      timestamptz   NOT NULL DEFAULT now(),
    _deleted_at     timestamptz
);

CREATE TABLE raw_supabase_main.flagship_course_sales
    (LIKE raw_supabase_main.express_course_sales INCLUDING ALL);

CREATE TABLE raw_supabase_tripwire.tripwire_users
    (LIKE raw_supabase_main.prooftest_leads INCLUDING ALL);

CREATE TABLE raw_supabase_tripwire.tripwire_purchases (
    id           bigint        PRIMARY KEY,
    user_id      bigint        NOT NULL,
    amount       numeric(14,2) NOT NULL,
    currency     text          NOT NULL,
    status       text          NOT NULL,
    created_at   timestamptz   NOT NULL,
    updated_at   timestamptz   NOT NULL,
    _raw         jsonb         NOT NULL,
    _loaded_at   timestamptz   NOT NULL DEFAULT now(),
    _deleted_at  timestamptz
);

CREATE TABLE raw_supabase_traffic.all_sales_tracking (
    id              bigint        PRIMARY KEY,
    product         text          NOT NULL,
    amocrm_lead_id  bigint,
    amount          numeric(14,2) NOT NULL,
    currency        text          NOT NULL,
    utm_source      text,
    utm_medium      text,
    utm_campaign    text,
    utm_content     text,
    utm_term        text,
    targetologist   text,
    sold_at         timestamptz   NOT NULL,
    created_at      timestamptz   NOT NULL,
    updated_at      timestamptz   NOT NULL,
    _raw            jsonb         NOT NULL,
    _loaded_at      timestamptz   NOT NULL DEFAULT now(),
    _deleted_at     timestamptz
);

CREATE TABLE raw_supabase_traffic.targetologists (
    id           bigint      PRIMARY KEY,
    name         text        NOT NULL,
    active       boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    _raw         jsonb       NOT NULL,
    _loaded_at   timestamptz NOT NULL DEFAULT now(),
    _deleted_at  timestamptz
);

CREATE TABLE raw_supabase_traffic.targetologist_utm_rules (
    id                bigint      PRIMARY KEY,
    targetologist_id  bigint      NOT NULL,
    utm_field         text        NOT NULL,
    match_type        text        NOT NULL,
    pattern           text        NOT NULL,
    priority          integer     NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    _raw              jsonb       NOT NULL,
    _loaded_at        timestamptz NOT NULL DEFAULT now(),
    _deleted_at       timestamptz
);
