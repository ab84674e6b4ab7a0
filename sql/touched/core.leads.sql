-- The reporting days of core.leads that raw rows stamped after %(since)s may have changed.
WITH landing AS (
    SELECT * FROM stg_supabase_main.landing_leads
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), deals AS (
    SELECT * FROM raw_amocrm.leads WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), instants AS (
    SELECT created_at AS at FROM landing
    UNION ALL SELECT created_at FROM stg_supabase_main.prooftest_leads
              WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
    UNION ALL SELECT created_at FROM stg_supabase_tripwire.tripwire_users
              WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
    -- a landing lead shows its deal's pipeline and status
    UNION ALL SELECT l.created_at FROM stg_supabase_main.landing_leads l
              JOIN deals d ON d.id = l.amocrm_lead_id
    UNION ALL SELECT created_at FROM deals
    -- a deal a changed landing lead points to may leave (or join) the AmoCRM-only leads
    UNION ALL SELECT a.created_at FROM raw_amocrm.leads a
              WHERE a.id IN (SELECT amocrm_lead_id FROM landing)
)
SELECT DISTINCT (at AT TIME ZONE %(tz)s)::date AS day FROM instants
