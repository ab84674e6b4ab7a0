-- The rows of core.leads (their lead keys) that raw rows stamped after %(since)s may have
-- changed: a keyed build recomputes these rows, not whole days.
WITH landing AS (
    SELECT id, amocrm_lead_id FROM stg_supabase_main.landing_leads
    WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
), deals AS (
    SELECT id FROM raw_amocrm.leads WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
)
SELECT 'landing:' || id AS lead_key FROM landing
UNION SELECT 'prooftest:' || id FROM stg_supabase_main.prooftest_leads
      WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
UNION SELECT 'tripwire:' || id FROM stg_supabase_tripwire.tripwire_users
      WHERE _loaded_at > %(since)s OR _deleted_at > %(since)s
-- a landing lead shows its deal's pipeline and status
UNION SELECT 'landing:' || l.id FROM stg_supabase_main.landing_leads l
      WHERE l.amocrm_lead_id IN (SELECT id FROM deals)
UNION SELECT 'amocrm:' || id FROM deals
-- the deal a changed landing lead points to, or pointed to at the last build, may join (or
-- leave) the AmoCRM-only leads
UNION SELECT 'amocrm:' || amocrm_lead_id FROM landing WHERE amocrm_lead_id IS NOT NULL
UNION SELECT 'amocrm:' || c.amocrm_lead_id FROM core.leads c
      WHERE c.amocrm_lead_id IS NOT NULL AND c.lead_key IN (SELECT 'landing:' || id FROM landing)
