-- Reporting days whose core and marts rows may differ from the last build (raw rows stamped after %(since)s); a NULL day means everything (the attribution rules changed).
WITH landing AS (
    SELECT * FROM stg_supabase_main.landing_leads
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), deals AS (
    SELECT * FROM raw_amocrm.leads WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), webhooks AS (
    SELECT amocrm_lead_id, created_at, _loaded_at, _deleted_at
    FROM stg_supabase_main.express_course_sales
    UNION ALL
    SELECT amocrm_lead_id, created_at, _loaded_at, _deleted_at
    FROM stg_supabase_main.flagship_course_sales
), changed_webhooks AS (
    SELECT * FROM webhooks WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), tracking AS (
    SELECT * FROM stg_supabase_traffic.all_sales_tracking
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), users AS (
    SELECT * FROM stg_supabase_tripwire.tripwire_users
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), sale_deals AS (
    -- a course sale's day is its deal's first webhook; these deals' sales may have changed
    SELECT amocrm_lead_id FROM changed_webhooks
    UNION SELECT id FROM deals
    UNION SELECT amocrm_lead_id FROM landing
    UNION SELECT amocrm_lead_id FROM tracking
), instants AS (
    SELECT created_at AS at FROM landing
    UNION ALL SELECT created_at FROM stg_supabase_main.prooftest_leads
              WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
    UNION ALL SELECT created_at FROM users
    UNION ALL SELECT l.created_at FROM stg_supabase_main.landing_leads l
              JOIN deals d ON d.id = l.amocrm_lead_id
    UNION ALL SELECT created_at FROM deals
    UNION ALL SELECT coalesce(closed_at, updated_at) FROM deals
    UNION ALL SELECT created_at FROM changed_webhooks
    UNION ALL SELECT min(w.created_at) FROM webhooks w
              WHERE w._deleted_at IS NULL AND w.amocrm_lead_id IN (SELECT * FROM sale_deals)
              GROUP BY w.amocrm_lead_id
    UNION ALL SELECT created_at FROM stg_supabase_tripwire.tripwire_purchases
              WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
                 OR user_id IN (SELECT id FROM users)
    UNION ALL SELECT sold_at FROM tracking
)
SELECT DISTINCT (at AT TIME ZONE %(tz)s)::date AS day FROM instants
UNION
SELECT date FROM raw_facebook.ad_insights_daily
WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
UNION
-- for marts that say is_provisional: the days provisional now and every day that was at the
-- last build (its Facebook today: the latest day of the rows it could see), however long ago
SELECT generate_series(
    least(max(date) FILTER (WHERE _loaded_at <= %(since)s), max(date))
        - %(provisional_days)s::int,
    max(date), interval '1 day')::date
FROM raw_facebook.ad_insights_daily
WHERE %(provisional_days)s::int IS NOT NULL
UNION
SELECT NULL WHERE EXISTS (
    SELECT 1 FROM stg_supabase_traffic.targetologist_utm_rules
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
    UNION ALL
    SELECT 1 FROM stg_supabase_traffic.targetologists
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
)
