-- Each raw row's hash as received (blake2b-128, written by the loader): a re-read row whose hash
-- equals the stored live row's is not staged again. Rows stored before this have NULL and are
-- rewritten once. The Supabase mirrors gain the column through their schema evolution.
ALTER TABLE raw_amocrm.account ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_amocrm.leads ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_amocrm.pipelines ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_amocrm.statuses ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_amocrm.lead_events ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_facebook.ad_accounts ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_facebook.campaigns ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_facebook.adsets ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_facebook.ads ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_facebook.ad_insights_daily ADD COLUMN IF NOT EXISTS _row_hash bytea;
ALTER TABLE raw_facebook.token_info ADD COLUMN IF NOT EXISTS _row_hash bytea;
