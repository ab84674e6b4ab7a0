-- A token refresh's intent, committed before the single-use refresh token is spent and cleared
-- when the new pair is stored: a later run that finds it set knows a refresh was interrupted.
ALTER TABLE ops.oauth_tokens ADD COLUMN refresh_started_at timestamptz;
