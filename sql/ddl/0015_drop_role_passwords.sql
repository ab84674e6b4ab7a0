-- dashboard_reader's password is checked by logging in with it (the role is the server's, shared
-- by every database on it, so a fingerprint kept in one warehouse could go stale): no table.
DROP TABLE IF EXISTS ops.role_passwords;
