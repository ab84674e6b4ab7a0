-- The reporting days of core.sales that raw rows stamped after %(since)s may have changed.
WITH webhooks AS (
    SELECT amocrm_lead_id, created_at, _loaded_at, _deleted_at
    FROM stg_supabase_main.express_course_sales
    UNION ALL
    SELECT amocrm_lead_id, created_at, _loaded_at, _deleted_at
    FROM stg_supabase_main.flagship_course_sales
), changed_webhooks AS (
    SELECT * FROM webhooks WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), deals AS (
    SELECT * FROM raw_amocrm.leads WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
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
    UNION SELECT amocrm_lead_id FROM stg_supabase_main.landing_leads
          WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
    UNION SELECT amocrm_lead_id FROM tracking
), instants AS (
    SELECT coalesce(closed_at, updated_at) AS at FROM deals
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
-- the days these deals' sales were on at the last build (a won deal's closing day can move)
SELECT report_day FROM core.sales WHERE amocrm_lead_id IN (SELECT * FROM sale_deals)
