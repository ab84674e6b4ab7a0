-- raw_facebook.token_info.checked_at: Facebook's clock when debug_token answered, so the
-- Facebook Token check reads the days to expiry from the warehouse instead of asking again.
ALTER TABLE raw_facebook.token_info ADD COLUMN checked_at timestamptz;
