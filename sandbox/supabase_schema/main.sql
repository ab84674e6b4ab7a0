-- Supabase "Main" (landing) project as the sandbox serves it; public schema of its own database.
CREATE TABLE landing_leads (
    id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    name text, phone text, email text, funnel text,
    utm_source text, utm_medium text, utm_campaign text, utm_content text, utm_term text,
    amocrm_lead_id bigint, synced_to_amocrm boolean NOT NULL DEFAULT false, synced_at timestamptz
);
CREATE TABLE prooftest_leads (
    id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    name text, phone text, email text,
    utm_source text, utm_medium text, utm_campaign text, utm_content text, utm_term text
);
CREATE TABLE express_course_sales (
    id bigint PRIMARY KEY, amocrm_lead_id bigint, pipeline_id bigint, status_id bigint,
    amount numeric(14, 2), currency text,
    utm_source text, utm_medium text, utm_campaign text, utm_content text, utm_term text,
    created_at timestamptz NOT NULL, payload jsonb
);
CREATE TABLE flagship_course_sales (LIKE express_course_sales INCLUDING ALL);
