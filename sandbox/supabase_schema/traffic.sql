-- Supabase "Traffic" project as the sandbox serves it.
CREATE TABLE all_sales_tracking (
    id bigint PRIMARY KEY, product text NOT NULL, amocrm_lead_id bigint,
    amount numeric(14, 2) NOT NULL, currency text NOT NULL,
    utm_source text, utm_medium text, utm_campaign text, utm_content text, utm_term text,
    targetologist text, sold_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE targetologists (
    id bigint PRIMARY KEY, name text NOT NULL, active boolean NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE targetologist_utm_rules (
    id bigint PRIMARY KEY, targetologist_id bigint NOT NULL, utm_field text NOT NULL,
    match_type text NOT NULL, pattern text NOT NULL, priority int NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
