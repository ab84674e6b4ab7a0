-- Which password a role was last given, as a salted fingerprint (never the password): run start
-- alters dashboard_reader only when DASHBOARD_READER_PASSWORD changed.
CREATE TABLE ops.role_passwords (
    role         text        PRIMARY KEY,
    salt         bytea       NOT NULL,
    fingerprint  bytea       NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT now()
);
