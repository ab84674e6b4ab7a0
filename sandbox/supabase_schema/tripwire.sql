-- Supabase "Tripwire" project as the sandbox serves it.
CREATE TABLE tripwire_users (
    id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    name text, phone text, email text,
    utm_source text, utm_medium text, utm_campaign text, utm_content text, utm_term text
);
CREATE TABLE tripwire_purchases (
    id bigint PRIMARY KEY, user_id bigint NOT NULL, amount numeric(14, 2) NOT NULL,
    currency text NOT NULL, status text NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
