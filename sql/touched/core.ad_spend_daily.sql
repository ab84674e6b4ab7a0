-- The days of core.ad_spend_daily that Facebook rows stamped after %(since)s changed.
SELECT DISTINCT date AS day FROM raw_facebook.ad_insights_daily
WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
